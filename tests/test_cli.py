"""The ``corpus-bot`` console script, run for real in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_search import write_corpus

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("corpus-bot")


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"corpus:\n  path: {REPO / 'corpus'}\nindex:\n  cache_dir: {tmp_path / 'cache'}\n")
    return path


def test_ask_json_answers_from_the_shipped_corpus(config: Path) -> None:
    done = run("ask", "basic research", "--config", str(config), "--json", "--top-k", "3")
    assert done.returncode == 0, done.stderr
    hits = json.loads(done.stdout)
    assert 1 <= len(hits) <= 3
    assert set(hits[0]) == {"text", "date", "title", "doc", "url", "score"}
    assert hits[0]["date"] == "2023-08-05"
    assert hits[0]["doc"] == "000_3587ab5dbc81a1f9.txt"
    assert "basic research" in hits[0]["text"].lower()


def test_ask_prints_readable_quotes(config: Path) -> None:
    done = run("ask", "original innovation", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "2023-08-05 · Strengthening Basic Research" in done.stdout
    assert "original innovation" in done.stdout


def test_ask_with_a_misspelling_suggests_a_word(config: Path) -> None:
    done = run("ask", "reserch", "--config", str(config))
    assert done.returncode == 0
    assert "did you mean research" in done.stdout


def test_index_prints_the_load_summary_and_problems(config: Path, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "broken.txt").write_bytes(b"\x00\x01\x02 binary")
    done = run("index", "--corpus", str(corpus), "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "4 documents" in done.stdout and "1 file skipped" in done.stdout and "built" in done.stdout
    assert "broken.txt" in done.stderr
    again = run("index", "--corpus", str(corpus), "--config", str(config))
    assert "loaded from cache" in again.stdout


def test_python_dash_m_bot_is_the_same_command(config: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "basic research", "--config", str(config), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["date"] == "2023-08-05"


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["ask", "x", "--corpus", "/nonexistent/corpus"], "does not exist"),
        ("empty", ["ask", "x", "--corpus", "{tmp}/empty"], "no usable documents"),
        ("badconfig", ["ask", "x", "--config", "{tmp}/bad.yaml"], "unknown key"),
    ],
)
def test_user_errors_are_one_line_and_non_zero(
    setup: str | None, args: list[str], message: str, config: Path, tmp_path: Path
) -> None:
    if setup == "empty":
        (tmp_path / "empty").mkdir()
    if setup == "badconfig":
        (tmp_path / "bad.yaml").write_text("corpus:\n  pth: corpus\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--config" not in args:
        args += ["--config", str(config)]
    done = run(*args)
    assert done.returncode != 0
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def ask_here(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str, files: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """``corpus-bot ask`` in this process over a small corpus: (exit code, stdout, stderr)."""
    from bot.cli import main

    corpus = write_corpus(tmp_path / "corpus", files) if files else write_corpus(tmp_path / "corpus")
    config = tmp_path / "config.yaml"
    config.write_text(f"corpus:\n  path: {corpus}\nindex:\n  cache_dir: {tmp_path / 'cache'}\n")
    code = main(["ask", *args, "--config", str(config)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_question_starting_with_a_dash_is_a_question(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = ask_here(capsys, tmp_path, "-pacific", "coral")
    assert code == 0, err
    assert "Astronauts will study coral" in out and "Pacific" not in out
    code, out, err = ask_here(capsys, tmp_path, "-research")  # an exclusion alone: the engine explains
    assert code == 1 and "no words to search for" in err and "unrecognized" not in err
    with pytest.raises(SystemExit):
        ask_here(capsys, tmp_path, "coral", "--no-such-option")  # a real unknown option is still one


def test_ask_json_reports_errors_as_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = ask_here(capsys, tmp_path, "coral after:2023-13-45", "--json")
    assert code == 1
    assert "not a valid date" in json.loads(out)["error"]
    errors = [line for line in err.splitlines() if line.startswith("corpus-bot: error:")]
    assert len(errors) == 1 and "not a valid date" in errors[0]


def test_a_question_too_long_is_refused_not_cut(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    question = "coral " * 700 + "-pacific"  # over 4,096 characters: a cut would lose the exclusion
    code, out, err = ask_here(capsys, tmp_path, question)
    assert code == 1 and "longer than 4,096 characters" in err
    assert "Pacific" not in out


def test_a_negative_score_is_never_shown(tmp_path: Path) -> None:
    from bot.cli import _format_result, _hit_json
    from retrieval import IndexSettings, SearchIndex, SemanticSettings, load_corpus

    same = " date 2020-01-01 One\n\nThe coral glows."  # BM25's idf of a word in every sentence is < 0
    corpus = write_corpus(tmp_path / "corpus", {"one.txt": same, "two.txt": same})
    settings = IndexSettings(semantic=SemanticSettings(enabled=False))
    result = SearchIndex.build(load_corpus(corpus).documents, settings).search("coral")
    assert result.hits[0].score < 0  # the engine's number is kept
    shown = _format_result(result, bold=False)
    assert "The coral glows." in shown and "score -" not in shown and "score 0.00" in shown
    assert _hit_json(result.hits[0])["score"] == 0


def test_webhook_info_and_delete_take_the_token_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import httpx

    from bot.cli import main
    from tests.fake_telegram import DEFAULT_TOKEN, FakeTelegram

    with FakeTelegram(token=DEFAULT_TOKEN) as tg:
        config = tmp_path / "config.yaml"
        config.write_text(f"telegram: {{base_url: '{tg.api_url}'}}\n", encoding="utf-8")
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", DEFAULT_TOKEN)
        with httpx.Client() as http:  # a webhook set by an earlier run in webhook mode
            http.post(f"{tg.api_url}{DEFAULT_TOKEN}/setWebhook", json={"url": "https://bot.example.org/t"})
        assert main(["webhook", "info", "--config", str(config)]) == 0
        info = capsys.readouterr().out
        assert main(["webhook", "delete", "--config", str(config)]) == 0
        deleted = capsys.readouterr().out
        assert tg.webhook["url"] == ""
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:wrong")
        assert main(["webhook", "info", "--config", str(config)]) == 1
        refused = capsys.readouterr().err
    assert "url: https://bot.example.org/t" in info and "pending updates: 0" in info
    assert deleted.startswith("webhook removed")
    assert refused.strip() == ("corpus-bot: error: Telegram rejected the bot token in TELEGRAM_BOT_TOKEN "
                               "(telegram.token_env)")
    assert DEFAULT_TOKEN.split(":")[1] not in info + deleted + refused

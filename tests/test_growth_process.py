"""``corpus-bot run`` as a real process: documents copied into the folder are answered without a restart."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import SHIPPED_CORPUS
from tests.fake_telegram import FakeTelegram
from tests.processes import corpus_bot_run

TOKEN = "123456:growth-test-token"
NEW_DOCUMENT = "date 2024-05-06 The Walrus Census\n\nA census counted eleven thousand walruses on the ice.\n"


def setup(tmp_path: Path, tg: FakeTelegram, *, watch: bool) -> tuple[Path, Path, dict[str, str]]:
    corpus = tmp_path / "corpus"
    shutil.copytree(SHIPPED_CORPUS, corpus)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"corpus: {{path: {corpus}, watch: {str(watch).lower()}, settle_seconds: 0.2}}\n"
        f"index: {{cache_dir: {tmp_path / 'cache'}}}\ntelegram: {{base_url: '{tg.api_url}'}}\n",
        encoding="utf-8",
    )
    return corpus, config, {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN}


def answer_to(tg: FakeTelegram, question: str, user: int, timeout: float = 20.0) -> str:
    before = len(tg.sent_messages(user))
    tg.message(question, user_id=user)
    deadline = time.monotonic() + timeout
    while len(tg.sent_messages(user)) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    messages = tg.sent_messages(user)
    assert len(messages) > before, f"no answer to {question!r}"
    return str(messages[-1]["text"])


def wait_answered(tg: FakeTelegram, question: str, user: int, expected: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = answer_to(tg, question, user)
        if expected in text:
            return text
        time.sleep(0.3)
    raise AssertionError(f"{expected!r} never came in an answer to {question!r}; last: {text!r}")


@pytest.mark.slow
def test_a_document_copied_in_is_answered_without_a_restart(tmp_path: Path) -> None:
    with FakeTelegram(token=TOKEN) as tg:
        corpus, config, env = setup(tmp_path, tg, watch=True)
        with corpus_bot_run("--config", str(config), env=env) as process:
            tg.wait_for_blocking("getUpdates", timeout=60)
            assert "No quotes found" in answer_to(tg, "walrus census", 1)
            (corpus / "walrus.txt").write_text(NEW_DOCUMENT, encoding="utf-8")
            assert "2024-05-06" in wait_answered(tg, "walrus census", 1, "eleven thousand walruses")
            (corpus / "walrus.txt").unlink()
            deadline = time.monotonic() + 30
            while "eleven thousand" in answer_to(tg, "walrus census", 1) and time.monotonic() < deadline:
                time.sleep(0.3)
            assert "eleven thousand" not in answer_to(tg, "walrus census", 1)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
        tg.assert_no_errors()
    assert process.returncode == 0, stderr
    assert "following" in stderr and "index updated, generation 2: 1 added" in stderr


@pytest.mark.slow
def test_sighup_looks_at_the_folder_when_it_is_not_watched(tmp_path: Path) -> None:
    with FakeTelegram(token=TOKEN) as tg:
        corpus, config, env = setup(tmp_path, tg, watch=False)
        with corpus_bot_run("--config", str(config), env=env) as process:
            tg.wait_for_blocking("getUpdates", timeout=60)
            (corpus / "walrus.txt").write_text(NEW_DOCUMENT, encoding="utf-8")
            time.sleep(1.5)
            assert "eleven thousand" not in answer_to(tg, "walrus census", 2)  # not watched: not seen
            process.send_signal(signal.SIGHUP)
            assert "2024-05-06" in wait_answered(tg, "walrus census", 2, "eleven thousand walruses")
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
        tg.assert_no_errors()
    assert process.returncode == 0, stderr

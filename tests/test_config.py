"""config.yaml -> Settings: defaults, paths, and one clear line naming the key for every mistake."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, Settings, load_settings, read_token

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_no_file_means_all_defaults_relative_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None)
    assert settings.source is None
    assert settings.corpus.path == tmp_path / "corpus"
    assert settings.index.cache_dir == tmp_path / ".cache/corpus-bot"
    assert settings.telegram.token_env == "TELEGRAM_BOT_TOKEN"
    assert settings.telegram.base_url == "https://api.telegram.org/bot"
    assert settings.telegram.mode == "polling"
    assert settings.replies.results_per_page == 3
    assert settings.limits.questions_per_minute == 20
    assert settings.ranking.delta is None


def test_none_picks_up_config_yaml_in_the_current_folder(tmp_path, monkeypatch):
    write(tmp_path, "replies: {results_per_page: 5}\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None)
    assert settings.replies.results_per_page == 5
    assert settings.source == tmp_path / "config.yaml"


def test_shipped_config_yaml_lists_every_key_with_its_default():
    shipped = load_settings(REPO / "config.yaml")
    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    for section in dataclasses.fields(Settings):
        if section.name == "source":
            continue
        keys = {f.name for f in dataclasses.fields(getattr(shipped, section.name))}
        assert set(data[section.name]) == keys, section.name
    plain = dataclasses.replace(shipped, source=None)
    assert plain.telegram == Settings().telegram
    assert plain.replies == Settings().replies
    assert plain.ranking == Settings().ranking
    assert plain.corpus.path == REPO / "corpus"


def test_relative_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "bot.yaml"
    path.write_text("corpus: {path: docs}\nindex: {cache_dir: /var/cache/x}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(Path("conf/bot.yaml"))
    assert settings.corpus.path == folder / "docs"
    assert settings.index.cache_dir == Path("/var/cache/x")


def test_values_are_read_and_typed(tmp_path):
    settings = load_settings(write(tmp_path, """
ranking: {algorithm: bm25plus, k1: 2, delta: 1}
telegram: {base_url: "http://127.0.0.1:9999/bot", mode: webhook, read_timeout: 5}
webhook: {url: "https://example.org/telegram", port: 8443}
logging: {level: debug}
analysis:
"""))
    assert settings.ranking.algorithm == "bm25plus"
    assert settings.ranking.k1 == 2.0 and isinstance(settings.ranking.k1, float)
    assert settings.ranking.delta == 1.0
    assert settings.telegram.base_url == "http://127.0.0.1:9999/bot"
    assert settings.telegram.read_timeout == 5.0
    assert settings.webhook.port == 8443
    assert settings.logging.level == "DEBUG"
    assert settings.log_level == 10
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.telegram.mode = "polling"  # type: ignore[misc]


def test_index_settings_carry_analysis_ranking_and_search(tmp_path):
    settings = load_settings(write(tmp_path, """
analysis: {language: english, stop_words: false, stemming: false}
index: {max_sentence_chars: 300}
ranking: {algorithm: bm25l, k1: 1.2, b: 0.5, delta: 0.3}
search: {weak_coverage: 0.25}
"""))
    index_settings = settings.index_settings()
    assert index_settings.stop_words is False and index_settings.stemming is False
    assert index_settings.max_sentence_chars == 300
    assert index_settings.ranking.algorithm == "bm25l"
    assert index_settings.ranking.k1 == 1.2 and index_settings.ranking.b == 0.5
    assert index_settings.ranking.delta == 0.3
    assert index_settings.weak_coverage == 0.25


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("telegram: {tokn: X}", "unknown key 'telegram.tokn' (did you mean 'telegram.token_env'?)"),
        ("telegrm: {}", "unknown key 'telegrm' (did you mean 'telegram'?)"),
        ("replies: {results_per_page: five}", "'replies.results_per_page' must be an integer, got 'five'"),
        ("replies: {results_per_page: 2.5}", "'replies.results_per_page' must be an integer, got 2.5"),
        ("replies: {results_per_page: true}", "'replies.results_per_page' must be an integer, got true"),
        ("replies: {results_per_page: 50}", "'replies.results_per_page' must be between 1 and 10, got 50"),
        ("replies: {inline_results: 51}", "'replies.inline_results' must be between 1 and 50, got 51"),
        ("telegram: {mode: poll}", "'telegram.mode' must be one of polling, webhook, got 'poll'"),
        ("telegram: {base_url: ftp://x}", "'telegram.base_url' must be an http:// or https:// URL, got 'ftp://x'"),
        ("telegram: {token_env: 'a b'}", "'telegram.token_env' must be the name of an environment variable"),
        ("telegram: {drop_pending_updates: 'yes'}", "'telegram.drop_pending_updates' must be true or false"),
        ("telegram: {read_timeout: null}", "'telegram.read_timeout' must be a number, got null"),
        ("telegram: [1, 2]", "'telegram' must be a mapping of keys, got a list"),
        ("ranking: {algorithm: bm26}", "'ranking.algorithm' must be one of bm25okapi, bm25l, bm25plus"),
        ("ranking: {b: 2}", "'ranking.b' must be between 0 and 1, got 2"),
        ("ranking: {k1: -1}", "'ranking.k1' must be at least 0, got -1"),
        ("ranking: {k1: .nan}", "'ranking.k1' must be a finite number"),
        ("corpus: {path: ''}", "'corpus.path' must be a non-empty path"),
        ("corpus: {path: 5}", "'corpus.path' must be a path, got 5"),
        ("webhook: {port: 0}", "'webhook.port' must be between 1 and 65535, got 0"),
        ("webhook: {path: telegram}", "'webhook.path' must be a URL path starting with '/'"),
        ("logging: {level: loud}", "'logging.level' must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("analysis: {language: klingon}", "'analysis.language' must be a language the stemmer knows: one of"),
        ("analysis: {language: esperanto}", "'analysis.stop_words' must be false for language 'esperanto'"),
        ("analysis: {language: Greek}", "'analysis.stop_words' must be false for language 'greek'"),
        ("- a\n- b\n", "must be a mapping of sections"),
        ("telegram: {mode: [", "not valid YAML at line 1"),
    ],
)
def test_mistakes_stop_with_one_line_naming_the_key(tmp_path, text, expected):
    message = error_for(tmp_path, text)
    assert message.startswith(str(tmp_path / "config.yaml") + ": ")
    assert expected in message


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_empty_file_means_defaults(tmp_path):
    settings = load_settings(write(tmp_path, "# nothing yet\n"))
    assert settings.replies == Settings().replies


def test_token_comes_from_the_named_environment_variable(tmp_path):
    settings = load_settings(write(tmp_path, "telegram: {token_env: MY_BOT_TOKEN}"))
    assert read_token(settings, {"MY_BOT_TOKEN": " 123:abc \n"}) == "123:abc"
    with pytest.raises(ConfigError) as caught:
        read_token(settings, {"TELEGRAM_BOT_TOKEN": "123:abc"})
    assert str(caught.value) == "environment variable MY_BOT_TOKEN is not set (telegram.token_env)"


def test_default_token_variable_and_a_malformed_token(monkeypatch):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    with pytest.raises(ConfigError) as caught:
        read_token(Settings())
    assert str(caught.value) == "environment variable TELEGRAM_BOT_TOKEN is not set (telegram.token_env)"
    with pytest.raises(ConfigError, match="does not look like a bot token") as caught:
        read_token(Settings(), {"TELEGRAM_BOT_TOKEN": "secret-without-colon"})
    assert "secret-without-colon" not in str(caught.value)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "42:xyz")
    assert read_token(Settings()) == "42:xyz"


@pytest.mark.parametrize("language", ["french", "German", "english", "porter", "spanish", "dutch_porter"])
def test_languages_with_stop_words_are_accepted(tmp_path, language):
    settings = load_settings(write(tmp_path, f"analysis: {{language: {language}}}"))
    assert settings.analysis.stop_words is True and settings.analysis.language == language


def test_config_and_analyzer_agree_on_every_language(tmp_path):
    import Stemmer

    from retrieval.analysis import Analyzer

    for language in Stemmer.algorithms():
        try:
            Analyzer(language=language)
        except ValueError:
            analyzer_ok = False
        else:
            analyzer_ok = True
        try:
            load_settings(write(tmp_path, f"analysis: {{language: {language}}}"))
        except ConfigError:
            config_ok = False
        else:
            config_ok = True
        assert config_ok == analyzer_ok, language
        load_settings(write(tmp_path, f"analysis: {{language: {language}, stop_words: false}}"))


def test_reading_settings_does_not_load_the_engine():
    import subprocess
    import sys

    code = ("import sys; from bot.config import load_settings; load_settings(None); "
            "print('numpy' in sys.modules, 'retrieval.search' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.split() == ["False", "False"]


def test_the_settings_check_against_the_engines_own_values():
    import dataclasses

    import retrieval
    from bot.config import LimitsConfig, RankingConfig
    from retrieval.index import BM25Params
    from retrieval.search import MAX_QUESTION_CHARS

    fields = {f.name: f for f in dataclasses.fields(RankingConfig)}
    with pytest.raises(ValueError, match="unknown ranking algorithm"):
        BM25Params(algorithm="bm25x")
    for algorithm in fields["algorithm"].metadata["choices"]:
        BM25Params(algorithm=algorithm)  # every choice the config allows, the engine implements
    limit = {f.name: f for f in dataclasses.fields(LimitsConfig)}["max_question_chars"]
    assert limit.metadata["max"] == MAX_QUESTION_CHARS
    assert set(retrieval.__all__) == set(retrieval._EXPORTS)
    assert all(getattr(retrieval, name) is not None for name in retrieval.__all__)

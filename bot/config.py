"""``config.yaml`` + environment -> one typed, validated, frozen :class:`Settings` object.

Every key has a default, so the bot runs without a config file at all. A mistake in the file (an unknown
key, a wrong type, a value out of range) stops start-up with one line that names the key, instead of a
traceback minutes later in a handler. Secrets never live in the file: ``telegram.token_env`` names the
environment variable that holds the bot token, and :func:`read_token` reads it separately so that commands
which do not talk to Telegram (``corpus-bot ask``, ``corpus-bot index``) work without one.

    settings = load_settings("config.yaml")   # or None: ./config.yaml if present, else all defaults
    token = read_token(settings)               # only for `run`
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from retrieval.limits import ALGORITHMS, MAX_QUESTION_CHARS  # plain values: the engine is not loaded

if typing.TYPE_CHECKING:  # retrieval is imported lazily: reading a config file should not load numpy
    from retrieval import IndexSettings

DEFAULT_CONFIG_FILE = "config.yaml"

_MODES = ("polling", "webhook")
_LATE_POLICIES = ("note", "drop")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ConfigError(Exception):
    """The configuration cannot be used. ``str(error)`` is one line that names the file and the key."""


def _key(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] = (),
    check: str | None = None,
) -> Any:
    """A settings field with its default and the constraints :func:`load_settings` enforces."""
    metadata = {"min": low, "max": high, "choices": choices, "check": check}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class CorpusConfig:
    path: Path = _key(Path("corpus"))  # noqa: RUF009 (a Path is immutable)
    watch: bool = _key(True)  # follow the folder while the bot runs (new, changed, removed files)
    settle_seconds: float = _key(0.5, low=0.0, high=3600.0)  # a file unchanged this long is written whole
    poll_seconds: float = _key(300.0, low=1.0, high=86_400.0)  # a full look even when no change was heard of


@dataclass(frozen=True)
class IndexConfig:
    cache_dir: Path = _key(Path(".cache/corpus-bot"))  # noqa: RUF009 (a Path is immutable)
    max_sentence_chars: int = _key(600, low=50, high=100_000)  # longer sentences are split


@dataclass(frozen=True)
class AnalysisConfig:
    language: str = _key("english", check="language")  # a Snowball stemmer name
    stop_words: bool = _key(True)
    stemming: bool = _key(True)


@dataclass(frozen=True)
class RankingConfig:
    algorithm: str = _key("bm25okapi", choices=ALGORITHMS)
    k1: float = _key(1.5, low=0)
    b: float = _key(0.75, low=0, high=1)
    epsilon: float = _key(0.25, low=0)
    delta: float | None = _key(None, low=0)  # None: the algorithm's own default
    expansions: bool = _key(True)  # spelling variants, word forms, typos, compounds, synonyms: extra terms
    semantic: bool = _key(True)  # rank by meaning too (sentence embeddings), fused with BM25
    semantic_weight: float = _key(0.5, low=0, high=1)  # the share of the fused score that meaning gives


@dataclass(frozen=True)
class SearchConfig:
    weak_coverage: float = _key(0.5, low=0, high=1)


@dataclass(frozen=True)
class RepliesConfig:
    results_per_page: int = _key(3, low=1, high=10)
    max_pages: int = _key(10, low=1, high=100)
    context_sentences: int = _key(2, low=0, high=10)
    inline_results: int = _key(20, low=1, high=50)  # the Bot API allows at most 50 per answer
    inline_cache_time: int = _key(300, low=0, high=86_400)


@dataclass(frozen=True)
class LimitsConfig:
    questions_per_minute: int = _key(20, low=0, high=10_000)  # 0 turns the limit off
    max_question_chars: int = _key(1000, low=1, high=MAX_QUESTION_CHARS)


@dataclass(frozen=True)
class TelegramConfig:
    token_env: str = _key("TELEGRAM_BOT_TOKEN", check="env_name")
    base_url: str = _key("https://api.telegram.org/bot", check="http_url")
    mode: str = _key("polling", choices=_MODES)
    drop_pending_updates: bool = _key(False)
    concurrent_updates: int = _key(16, low=1, high=1024)
    connect_timeout: float = _key(10.0, low=0.1, high=600)
    read_timeout: float = _key(30.0, low=0.1, high=600)


@dataclass(frozen=True)
class WebhookConfig:
    listen: str = _key("127.0.0.1", check="nonempty")
    port: int = _key(8080, low=1, high=65_535)
    path: str = _key("/telegram", check="url_path")
    url: str | None = _key(None, check="http_url")  # the public URL Telegram posts to
    secret_token_env: str = _key("TELEGRAM_WEBHOOK_SECRET", check="env_name")
    max_connections: int = _key(40, low=1, high=100)
    drop_pending_updates: bool = _key(False)


@dataclass(frozen=True)
class DeliveryConfig:
    """How answers get through a bad day at Telegram: the inbox on disk, retries, pacing, stopping."""

    path: Path | None = _key(None)  # noqa: RUF009 (None: inbox.sqlite3 in index.cache_dir)
    retry_for: float = _key(600.0, low=1, high=86_400)  # seconds an answer is retried before giving up
    max_age: float = _key(3600.0, low=1, high=30 * 86_400)  # an older question is answered with a note
    late: str = _key("note", choices=_LATE_POLICIES)  # ...or dropped ("drop")
    retention_days: float = _key(7.0, low=0.01, high=3650)  # answered updates kept this long (dedup)
    private_rate: float = _key(1.0, low=0, high=1000)  # messages a second to one private chat (0: any)
    group_rate: float = _key(20.0, low=0, high=60_000)  # messages a minute to one group (0: any)
    overall_rate: float = _key(30.0, low=0, high=100_000)  # messages a second in all (0: no limit)
    drain_timeout: float = _key(25.0, low=0, high=3600)  # seconds to finish work in hand when stopping


@dataclass(frozen=True)
class LoggingConfig:
    level: str = _key("INFO", choices=_LOG_LEVELS)


@dataclass(frozen=True)
class Settings:
    """All settings, section by section, exactly as in ``config.yaml``."""

    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    ranking: RankingConfig = field(default_factory=RankingConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    replies: RepliesConfig = field(default_factory=RepliesConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: Path | None = None  # the config file these settings came from; None: all defaults

    def index_settings(self) -> IndexSettings:
        """The part of the settings that shapes the index (a change means a rebuild)."""
        from retrieval import NO_EXPANSION, BM25Params, ExpansionSettings, IndexSettings, SemanticSettings

        ranking = BM25Params(
            algorithm=self.ranking.algorithm,
            k1=self.ranking.k1,
            b=self.ranking.b,
            epsilon=self.ranking.epsilon,
            delta=self.ranking.delta,
        )
        return IndexSettings(
            language=self.analysis.language,
            stop_words=self.analysis.stop_words,
            stemming=self.analysis.stemming,
            max_sentence_chars=self.index.max_sentence_chars,
            ranking=ranking,
            weak_coverage=self.search.weak_coverage,
            expansion=ExpansionSettings() if self.ranking.expansions else NO_EXPANSION,
            semantic=SemanticSettings(enabled=self.ranking.semantic, weight=self.ranking.semantic_weight),
        )

    @property
    def inbox_path(self) -> Path:
        """Where the inbox database lives: ``delivery.path``, or next to the index cache."""
        return self.delivery.path or self.index.cache_dir / "inbox.sqlite3"

    @property
    def log_level(self) -> int:
        return logging.getLevelNamesMapping()[self.logging.level]


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and validate ``path``; ``None`` means ``./config.yaml`` if it exists, else all defaults.

    Relative paths in the file are relative to the file's folder (without a file: the current folder).
    Raises :class:`ConfigError` with one line naming the key for any mistake.
    """
    if path is None:
        candidate = Path(DEFAULT_CONFIG_FILE)
        if not candidate.is_file():
            return _build({}, label=DEFAULT_CONFIG_FILE, base_dir=Path.cwd(), source=None)
        path = candidate
    path = Path(path).expanduser()
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{label}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: is a folder, not a config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read the config file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{label}: not valid YAML{at}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{label}: must be a mapping of sections (corpus:, telegram: …), got {_show(data)}")
    return _build(data, label=label, base_dir=path.resolve().parent, source=path.resolve())


def read_token(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The bot token from the environment variable named by ``telegram.token_env``."""
    env = os.environ if environ is None else environ
    name = settings.telegram.token_env
    token = (env.get(name) or "").strip()
    if not token:
        raise ConfigError(f"environment variable {name} is not set (telegram.token_env)")
    # A real token is "<bot id>:<secret>"; say so without ever echoing the value.
    if ":" not in token or any(ch.isspace() for ch in token):
        raise ConfigError(
            f"environment variable {name} does not look like a bot token "
            "(expected '123456789:ABC...' from @BotFather) (telegram.token_env)"
        )
    return token


def _build(data: Mapping[str, Any], *, label: str, base_dir: Path, source: Path | None) -> Settings:
    sections: dict[str, Any] = {}
    section_types = {f.name: f.default_factory for f in dataclasses.fields(Settings) if f.name != "source"}
    for name, value in data.items():
        if not isinstance(name, str) or name not in section_types:
            raise ConfigError(f"{label}: unknown key {_quote(name)}{_did_you_mean(name, section_types)}")
        if value is None:  # "telegram:" with nothing under it
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{label}: '{name}' must be a mapping of keys, got {_show(value)}")
        section_cls = section_types[name]
        sections[name] = _build_section(section_cls, name, value, label=label, base_dir=base_dir)
    for name, factory in section_types.items():
        if name not in sections:
            sections[name] = _build_section(factory, name, {}, label=label, base_dir=base_dir)
    return Settings(**sections, source=source)


def _build_section(cls: Any, section: str, data: Mapping[str, Any], *, label: str, base_dir: Path) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if not isinstance(key, str) or key not in fields:
            dotted = f"{section}.{key}"
            candidates = [f"{section}.{name}" for name in fields]
            raise ConfigError(f"{label}: unknown key {_quote(dotted)}{_did_you_mean(dotted, candidates)}")
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        value = data.get(name, spec.default)
        checked = _check(f"{section}.{name}", value, hints[name], spec.metadata, label=label)
        values[name] = base_dir / checked.expanduser() if isinstance(checked, Path) else checked
    if cls is AnalysisConfig:
        _check_stop_words(values["language"], values["stop_words"], label=label)
    return cls(**values)


def _check_stop_words(language: str, stop_words: bool, *, label: str) -> None:
    """Stop words need a list for the language; which ones have one is the analyzer's to say."""
    language = language.strip().lower()
    if not stop_words or language in ("english", "porter"):
        return  # the common case answered without importing retrieval (and numpy with it)
    from retrieval.analysis import stop_word_languages, stop_words_for

    if stop_words_for(language) is None:
        raise ConfigError(
            f"{label}: 'analysis.stop_words' must be false for language {language!r}: there is no stop-word "
            f"list for it (there is for {', '.join(stop_word_languages())})"
        )


def _check(key: str, value: Any, hint: Any, meta: Mapping[str, Any], *, label: str) -> Any:
    optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    base = next(t for t in typing.get_args(hint) if t is not type(None)) if optional else hint

    original = value

    def fail(expected: str) -> typing.NoReturn:
        raise ConfigError(f"{label}: '{key}' must be {expected}, got {_show(original)}")

    if value is None:
        if optional:
            return None
        fail(_type_name(base))
    if base is bool:
        if not isinstance(value, bool):
            fail("true or false")
    elif base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail("a number")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            fail("a finite number")
    elif base is Path:
        if isinstance(value, str):
            if not value.strip():
                fail("a non-empty path")
            value = Path(value)
        elif not isinstance(value, Path):  # a default is already a Path
            fail("a path")
    elif base is str and not isinstance(value, str):
        fail("a string")

    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        if not low <= value <= high:
            fail(f"between {_num(low)} and {_num(high)}")
    elif low is not None and value < low:
        fail(f"at least {_num(low)}")
    elif high is not None and value > high:
        fail(f"at most {_num(high)}")
    choices = meta.get("choices") or ()
    if choices:
        if key == "logging.level" and isinstance(value, str):
            value = value.upper()
        if value not in choices:
            fail(f"one of {', '.join(choices)}")
    check = meta.get("check")
    if check == "nonempty" and not value.strip():
        fail("a non-empty string")
    if check == "language":
        import Stemmer

        if value.strip().lower() not in Stemmer.algorithms():
            fail(f"a language the stemmer knows: one of {', '.join(Stemmer.algorithms())}")
    if check == "env_name" and not _ENV_NAME.fullmatch(value):
        fail("the name of an environment variable (letters, digits, underscores)")
    if check == "http_url" and not re.match(r"https?://[^\s/]+", value):
        fail("an http:// or https:// URL")
    if check == "url_path" and not (value.startswith("/") and not any(ch.isspace() for ch in value)):
        fail("a URL path starting with '/'")
    return value


def _type_name(base: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}
    return names[base]


def _num(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _quote(value: Any) -> str:
    return f"'{value}'"


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML, short enough for a one-line message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(shown)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)


def _did_you_mean(name: Any, candidates: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""

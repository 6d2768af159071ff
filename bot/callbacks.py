"""What the bot's buttons carry: their callback data, written and read back.

Telegram gives a button 64 bytes of ``callback_data`` and sends them back, unchanged, when it is pressed;
anyone can send any 64 bytes instead, so :func:`decode_callback` trusts nothing it reads: a malformed or
unknown string is None, a number is ASCII digits within bounds (:func:`parse_count`). The kinds:

* ``m|OFFSET|QUESTION``: a page of a question's quotes, shown in place (More / Back / a sort order);
  the question may be left out when too long (it is read back from the message the reply answers);
* ``q|QUESTION``: a question's first page as a new message (under a timeline chart);
* ``t|QUESTION``: the timeline chart of a question, as a new message;
* ``c|FINGERPRINT|SENTENCE|RADIUS`` and ``x|...``: the sentences around a quote, as a new message or
  widening the one the button is on. The fingerprint ties the sentence id to the index it came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from telegram import InlineKeyboardButton

__all__ = [
    "CALLBACK_DATA_LIMIT", "MAX_CALLBACK_NUMBER", "ContextButton", "PageButton", "QuestionButton",
    "TimelineButton", "decode_callback", "encode_context", "encode_page", "encode_question",
    "encode_timeline", "parse_count", "short_fingerprint",
]  # fmt: skip

CALLBACK_DATA_LIMIT: int = InlineKeyboardButton.MAX_CALLBACK_DATA  # 64 bytes


@dataclass(frozen=True)
class PageButton:
    """ "More" / "Back": show the page at ``offset`` of ``question`` (None: read it from the message)."""

    offset: int
    question: str | None = None


@dataclass(frozen=True)
class ContextButton:
    """ "Context": the sentences around ``sentence_id``; ``edit`` widens an existing context message."""

    fingerprint: str
    sentence_id: int
    radius: int
    edit: bool = False


@dataclass(frozen=True)
class QuestionButton:
    """ "Earliest quotes", "Busiest period"...: ``question``'s first page as a new message."""

    question: str


@dataclass(frozen=True)
class TimelineButton:
    """ "Timeline": the chart of ``question``."""

    question: str


def short_fingerprint(fingerprint: str) -> str:
    """8 characters that change whenever the index does; safe inside callback data."""
    return hashlib.blake2s(fingerprint.encode(), digest_size=4).hexdigest()


def encode_page(offset: int, question: str) -> str:
    data = f"m|{offset}|{question}"
    return data if len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT else f"m|{offset}|"


def encode_context(button: ContextButton) -> str:
    kind = "x" if button.edit else "c"
    return f"{kind}|{button.fingerprint}|{button.sentence_id}|{button.radius}"


MAX_CALLBACK_NUMBER = 10**12  # above any sentence id (they are int32), offset or radius this bot makes


def parse_count(text: str, limit: int) -> int | None:
    """A number a user controls (callback data, inline offsets): ASCII digits only, at most ``limit``; else
    None. ``str.isdigit`` is not enough: it accepts "²" (``int()`` fails) and "١٢" (``int()`` reads 12)."""
    if not (0 < len(text) <= len(str(limit)) and text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= limit else None


Button = PageButton | ContextButton | QuestionButton | TimelineButton


def decode_callback(data: str | None) -> Button | None:
    """The button behind ``callback_data``; None for anything this bot did not make (or an old format)."""
    if not data:
        return None
    kind, _, rest = data.partition("|")
    if kind == "m":
        text, _, question = rest.partition("|")
        offset = parse_count(text, MAX_CALLBACK_NUMBER)
        return None if offset is None else PageButton(offset, question or None)
    if kind in ("c", "x"):
        parts = rest.split("|")
        if len(parts) != 3:
            return None
        sentence_id = parse_count(parts[1], MAX_CALLBACK_NUMBER)
        radius = parse_count(parts[2], MAX_CALLBACK_NUMBER)
        if sentence_id is None or radius is None:
            return None
        return ContextButton(parts[0], sentence_id, radius, edit=kind == "x")
    if kind in ("q", "t") and rest.strip():
        return QuestionButton(rest) if kind == "q" else TimelineButton(rest)
    return None


def encode_question(question: str) -> str | None:
    """Callback data for a :class:`QuestionButton`; None when the question does not fit in 64 bytes."""
    return _fitting(f"q|{question}") if question.strip() else None


def encode_timeline(question: str) -> str | None:
    """Callback data for a :class:`TimelineButton`; None when the question does not fit in 64 bytes."""
    return _fitting(f"t|{question}") if question.strip() else None


def _fitting(data: str) -> str | None:
    return data if len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT else None

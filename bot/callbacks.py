"""What the bot's buttons carry: their callback data, written and read back.

Telegram gives a button 64 bytes of ``callback_data`` and sends them back, unchanged, when it is pressed;
anyone can send any 64 bytes instead, so :func:`decode_callback` trusts nothing it reads: a malformed or
unknown string is None, a number is ASCII digits within bounds (:func:`parse_count`). The kinds:

* ``m|OFFSET|QUESTION``: a page of a question's quotes, shown in place (More / Back / a sort order);
  the question may be left out when too long (it is read back from the message the reply answers);
* ``q|QUESTION``: a question's first page as a new message (under a timeline chart);
* ``t|QUESTION``: the timeline chart of a question, as a new message;
* ``c|SEGMENT|SENTENCE|RADIUS`` and ``x|...``: the sentences around a quote, as a new message or
  widening the one the button is on. ``SEGMENT`` is the short fingerprint of the index segment that holds
  the sentence and ``SENTENCE`` its id in that segment (``Hit.segment``, ``Hit.segment_sentence``): an
  address that outlives later updates of a live index, found again with :func:`resolve_sentence` (for an
  index of one segment, the short fingerprint of the index and the sentence id, as buttons always were).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from telegram import InlineKeyboardButton

if TYPE_CHECKING:
    from retrieval import Hit, SearchIndex

__all__ = [
    "CALLBACK_DATA_LIMIT", "MAX_CALLBACK_NUMBER", "ContextButton", "PageButton", "QuestionButton",
    "TimelineButton", "address_of", "decode_callback", "encode_context", "encode_page", "encode_question",
    "encode_timeline", "parse_count", "resolve_sentence", "short_fingerprint",
]  # fmt: skip

CALLBACK_DATA_LIMIT: int = InlineKeyboardButton.MAX_CALLBACK_DATA  # 64 bytes


@dataclass(frozen=True)
class PageButton:
    """ "More" / "Back": show the page at ``offset`` of ``question`` (None: read it from the message)."""

    offset: int
    question: str | None = None


@dataclass(frozen=True)
class ContextButton:
    """ "Context": the sentences around a quote; ``edit`` widens an existing context message.

    The quote is sentence ``sentence_id`` of the segment whose short fingerprint is ``fingerprint``
    (see :func:`address_of`)."""

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


_SHORT_FINGERPRINT = re.compile(r"[0-9a-f]{1,16}")  # what short_fingerprint makes (tests use shorter ones)


def address_of(hit: Hit, fingerprint: str) -> tuple[str, int]:
    """Where a "Context" button or an inline result finds ``hit`` again: the short fingerprint of its
    segment and its id there; ``fingerprint`` (the short fingerprint of the index) and its id in the
    index for a hit that does not say its segment."""
    if hit.segment and hit.segment_sentence >= 0:
        return short_fingerprint(hit.segment), hit.segment_sentence
    return fingerprint, hit.sentence_id


def resolve_sentence(index: SearchIndex, fingerprint: str, sentence: int) -> int | None:
    """The id in ``index`` of the sentence at the address (``fingerprint``, ``sentence``) that
    :func:`address_of` gave, maybe for an earlier generation of the index; None when that sentence is no
    longer there, or when the address is not one of ``index``'s segments (or fits several of them: a
    wrong quote is worse than none)."""
    matches = [f for f in dict.fromkeys(index.known_segments) if short_fingerprint(f) == fingerprint]
    if len(matches) != 1:
        return None
    return index.find_sentence(matches[0], sentence)


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
        if sentence_id is None or radius is None or not _is_short_fingerprint(parts[0]):
            return None
        return ContextButton(parts[0], sentence_id, radius, edit=kind == "x")
    if kind in ("q", "t") and rest.strip():
        return QuestionButton(rest) if kind == "q" else TimelineButton(rest)
    return None


def _is_short_fingerprint(text: str) -> bool:
    return text.isascii() and _SHORT_FINGERPRINT.fullmatch(text) is not None


def encode_question(question: str) -> str | None:
    """Callback data for a :class:`QuestionButton`; None when the question does not fit in 64 bytes."""
    return _fitting(f"q|{question}") if question.strip() else None


def encode_timeline(question: str) -> str | None:
    """Callback data for a :class:`TimelineButton`; None when the question does not fit in 64 bytes."""
    return _fitting(f"t|{question}") if question.strip() else None


def _fitting(data: str) -> str | None:
    return data if len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT else None

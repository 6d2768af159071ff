"""The question's syntax: what a user typed -> a :class:`Query` of free words, phrases, exclusions and dates.

One job: reading the syntax. It knows nothing of analysis or of the index; :mod:`retrieval.search` decides
what the parts mean for ranking. The syntax:

* ``"exact phrase"``: straight or typographic quotes (“…”, ”…”, „…“, «…», »…«, 「…」, 『…』). A quote mark
  that is never closed is dropped, and the rest of the question is read without phrases (never an error:
  ``27" monitor`` is not a mistake). A quote mark is closed by its own kind first (``"`` by ``"``, ``“`` by
  ``”``), so quotes of another kind inside a phrase stay in it: ``"he said “basic research” today"``.
* ``-word`` and ``-"a phrase"``: leave out sentences holding them. Only a ``-`` that starts a word and is
  followed by a letter excludes: ``well-known`` is one word, ``-5`` is the number.
* ``after:DATE``, ``before:DATE`` (inclusive: "on or after", "on or before"), ``on:DATE`` (that day,
  month or year) and ``year:YYYY``, in any letter case. DATE is ``YYYY-MM-DD``, ``YYYY-MM`` or ``YYYY``
  (``/`` or ``.`` also separate): a partial date means its first day for ``after:`` and its last day for
  ``before:`` (``before:2023-08`` is up to 2023-08-31). ``after: 2023`` (with a space) is read the same.
  Several filters must all hold.
* ``sort:new`` / ``sort:old`` (also ``newest``, ``oldest``, ``date``; ``sort:relevance`` is the default):
  the order of the quotes.
* Anything else, ``http://x`` and ``time:`` included, is a free word.

A filter that cannot be honoured (a date that does not exist, an empty date range) raises
:class:`QueryError`, whose message is written for the user. Parsing is one left-to-right pass: linear time.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed question. All dates are inclusive bounds on a document's date."""

    text: str  # the free words (everything that is not syntax), joined with spaces
    phrases: tuple[str, ...] = ()  # "exact phrase" contents, as written (whitespace collapsed)
    excluded: tuple[str, ...] = ()  # -word (or -"a phrase") contents, as written
    after: dt.date | None = None  # on or after this day (after:YYYY-MM-DD; after:2023 is 2023-01-01)
    before: dt.date | None = None  # on or before this day (before:YYYY-MM-DD; before:2023 is 2023-12-31)
    year: int | None = None  # year:YYYY: the same as after:YYYY-01-01 before:YYYY-12-31 (search applies it)
    sort: str = "relevance"  # "relevance", "new" (newest first) or "old" (oldest first)

    @property
    def is_empty(self) -> bool:
        """Nothing to search for: no free words and no phrases (filters and exclusions alone find nothing)."""
        return not self.text and not self.phrases

    @property
    def has_date_filter(self) -> bool:
        return self.after is not None or self.before is not None or self.year is not None


class QueryError(ValueError):
    """A question whose syntax cannot be honoured; the message is shown to the user as it is."""


# Quote marks: each opener with the marks that close it. Typographic double quotes close one another in
# any mix („…“, “…”, ”…”), since keyboards and phones are inconsistent about them.
_DOUBLE_CLOSERS = '"“”‟＂'
_CLOSERS = {
    **dict.fromkeys('"“”„‟＂', _DOUBLE_CLOSERS),
    "«": "»",
    "»": "«",
    "「": "」",
    "『": "』",
}
_QUOTES = "".join(sorted(set(_CLOSERS) | set("".join(_CLOSERS.values()))))
_CLOSER_RE = {opener: re.compile(f"[{re.escape(closers)}]") for opener, closers in _CLOSERS.items()}
# The closer of an opener's own pair comes first when there is one, so that quotes of another kind inside
# a phrase stay in it: "he said “basic research” today" is one phrase, not two.
_OWN_CLOSERS = {'"': '"', "＂": "＂", "“": "”", "„": "“”", "”": "”", "‟": "”"}
_OWN_CLOSER_RE = {opener: re.compile(f"[{re.escape(closers)}]") for opener, closers in _OWN_CLOSERS.items()}
_QUOTE_MARKS = str.maketrans(dict.fromkeys(_QUOTES, " "))

_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(f"[^\\s{re.escape(_QUOTES)}]+")  # a word ends at white space or a quote mark
_HAS_WORD = re.compile(r"[^\W_]")  # something to search for: a letter or a digit
_FILTER = re.compile(r"\(?(after|before|year|on|sort):(.*)", re.IGNORECASE | re.DOTALL)
_SORTS = {"new": "new", "newest": "new", "latest": "new", "recent": "new", "date": "new",
          "old": "old", "oldest": "old", "earliest": "old", "relevance": "relevance", "best": "relevance"}
_TRAILING = ".,;:!?)]}"  # punctuation after a filter's value, as in "(after:2023)." - not part of it
_DATE_VALUE = re.compile(r"\d+(?:[-/.]\d+)*[.,;:!?)\]}]*")  # a value after "after: " (with a space)
_DATE = re.compile(r"(\d{4})(?:[-/.](\d{1,2})(?:[-/.](\d{1,2}))?)?")
_DAY_FIRST = re.compile(r"\d{1,2}[-/.]\d{1,2}[-/.]\d{4}")
_SHOWN_MAX = 40  # characters of a bad value quoted back in a message


def parse_query(question: str) -> Query:
    """Read ``question``; raise :class:`QueryError` (a message for the user) for a filter that cannot hold."""
    words: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    filters = _Filters()
    text, n, i = question, len(question), 0
    no_own_closer: dict[str, int] = {}  # opener -> a position after which its own closer never comes
    phrases_on = True  # off for the rest of the question after a quote mark that is never closed
    while i < n:
        space = _SPACE.match(text, i)
        if space:
            i = space.end()
            continue
        char = text[i]
        if char == "-" and i + 1 < n and text[i + 1] in _CLOSERS and phrases_on:
            end = _closing(text, i + 1, no_own_closer)
            if end is None:
                phrases_on = False
                i += 2  # drop "-" and the unclosed quote mark
            else:
                _add_phrase(excluded, text[i + 2 : end])
                i = end + 1
            continue
        if char in _QUOTES:
            end = _closing(text, i, no_own_closer) if phrases_on and char in _CLOSERS else None
            if end is None:
                phrases_on = phrases_on and char not in _CLOSERS
                i += 1  # a quote mark that opens nothing is dropped
            else:
                _add_phrase(phrases, text[i + 1 : end])
                i = end + 1
            continue
        token_match = _TOKEN.match(text, i)
        assert token_match is not None  # not space and not a quote mark: at least one character
        token, i = token_match.group(), token_match.end()
        if len(token) > 1 and token[0] == "-" and token[1].isalpha():
            excluded.append(token[1:])
            continue
        filter_match = _FILTER.fullmatch(token)
        if filter_match:
            key, value = filter_match.group(1).lower(), filter_match.group(2)
            if key == "sort":
                filters.add_sort(value.rstrip(_TRAILING))
                continue
            if not value:  # "after: 2023-05-01": the value is the next word, if it looks like one
                following = _value_after_space(text, i)
                if following is not None:
                    value, i = following
            value = value.rstrip(_TRAILING)
            if value:
                filters.add(key, value)
                continue
        if _HAS_WORD.search(token):
            words.append(token)
    return filters.query(" ".join(words), tuple(phrases), tuple(excluded))


def _closing(text: str, opener_at: int, no_own_closer: dict[str, int]) -> int | None:
    """Where the quote mark at ``opener_at`` is closed, or None: by the next closer of its own pair if there
    is one, else by the next closer of any kind. ``no_own_closer`` remembers the searches that found none
    (a later one would not either), which keeps a question of many openers linear."""
    opener = text[opener_at]
    own = _OWN_CLOSER_RE.get(opener)
    if own is not None and opener_at < no_own_closer.get(opener, len(text)):
        match = own.search(text, opener_at + 1)
        if match:
            return match.start()
        no_own_closer[opener] = opener_at
    match = _CLOSER_RE[opener].search(text, opener_at + 1)
    return match.start() if match else None


def _add_phrase(phrases: list[str], content: str) -> None:
    phrase = " ".join(content.translate(_QUOTE_MARKS).split())  # quotes inside a phrase are no words
    if _HAS_WORD.search(phrase):
        phrases.append(phrase)


def _value_after_space(text: str, i: int) -> tuple[str, int] | None:
    """The word after the white space at ``i`` and where it ends, if it looks like a date (starts with a
    digit: "after: 2023"); None otherwise ("before: the war" is just words)."""
    space = _SPACE.match(text, i)
    if not space:
        return None
    value = _DATE_VALUE.match(text, space.end())
    if not value:
        return None
    end = value.end()
    if end < len(text) and not text[end].isspace() and text[end] not in _QUOTES:
        return None  # "1990s": not a date
    return value.group(), end


class _Filters:
    """The date filters met so far; they must all hold, so the range only narrows."""

    def __init__(self) -> None:
        self.after: dt.date | None = None
        self.after_text = ""
        self.before: dt.date | None = None
        self.before_text = ""
        self.year: int | None = None
        self.sort = "relevance"
        self.sort_text = ""

    def add_sort(self, value: str) -> None:
        order = _SORTS.get(value.lower())
        written = f"sort:{value if len(value) <= _SHOWN_MAX else value[: _SHOWN_MAX - 1] + '…'}"
        if order is None:
            raise QueryError(f"{written} is not an order I know (use sort:new or sort:old)")
        if self.sort_text and order != self.sort:
            raise QueryError(f"{self.sort_text} and {written} cannot both hold")
        self.sort, self.sort_text = order, written

    def add(self, key: str, value: str) -> None:
        shown = value if len(value) <= _SHOWN_MAX else value[: _SHOWN_MAX - 1] + "…"
        written = f"{key}:{shown}"
        if key == "year":
            if not re.fullmatch(r"\d{4}", value) or int(value) < 1:
                raise QueryError(f"{written} is not a valid year (use year:YYYY, e.g. year:2023)")
            year = int(value)
            if self.year is not None and self.year != year:
                raise QueryError(
                    f"year:{self.year} and {written} cannot both hold (use after: and before: for a span "
                    "of years)"
                )
            self.year = year
            return
        if key == "on":  # that day, month or year: from its first day to its last
            try:
                first, last = _parse_date(value, "after", written), _parse_date(value, "before", written)
            except QueryError:
                hint = "use on:YYYY-MM-DD, on:YYYY-MM or on:YYYY"
                raise QueryError(f"{written} is not a valid date ({hint})") from None
            if self.after is None or first > self.after:
                self.after, self.after_text = first, written
            if self.before is None or last < self.before:
                self.before, self.before_text = last, written
            return
        day = _parse_date(value, key, written)
        if key == "after" and (self.after is None or day > self.after):
            self.after, self.after_text = day, written
        if key == "before" and (self.before is None or day < self.before):
            self.before, self.before_text = day, written

    def query(self, text: str, phrases: tuple[str, ...], excluded: tuple[str, ...]) -> Query:
        if self.after and self.before and self.after > self.before:
            raise QueryError(f"{self.after_text} is later than {self.before_text}, so no date can match")
        if self.year is not None:
            if self.after and self.after.year > self.year:
                raise QueryError(
                    f"{self.after_text} is after the end of year:{self.year}, so no date can match"
                )
            if self.before and self.before.year < self.year:
                raise QueryError(
                    f"{self.before_text} is before the start of year:{self.year}, so no date can match"
                )
        return Query(text, phrases, excluded, self.after, self.before, self.year, self.sort)


def _parse_date(value: str, key: str, written: str) -> dt.date:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``; a partial date is its first day (after:) or last (before:)."""
    match = _DATE.fullmatch(value)
    if not match:
        hint = ", year first" if _DAY_FIRST.fullmatch(value) else ""
        raise QueryError(f"{written} is not a valid date (use {key}:YYYY-MM-DD{hint})")
    year, month, day = (int(part) if part else None for part in match.groups())
    assert year is not None
    try:
        if month is None:
            return dt.date(year, 1, 1) if key == "after" else dt.date(year, 12, 31)
        if day is None:
            last = calendar.monthrange(year, month)[1] if 1 <= month <= 12 and year >= 1 else 0
            return dt.date(year, month, 1 if key == "after" else last)
        return dt.date(year, month, day)
    except ValueError:
        raise QueryError(f"{written} is not a valid date (use {key}:YYYY-MM-DD)") from None

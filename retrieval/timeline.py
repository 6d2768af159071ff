"""Counting a topic's matches per period of time: the numbers behind a timeline chart.

Dates come in as day ordinals (``datetime.date.toordinal()``, as the sentence store keeps them). A period
is a day, a month or a year, chosen from the span of time to show so that a chart has enough bars to
show a shape and few enough to read: up to :data:`MAX_DAYS` days are shown day by day, up to
:data:`MAX_MONTHS` months month by month, anything longer year by year. Periods with no match are kept
(as zeros), so the gaps show.

    granularity = choose_granularity(first_ordinal, last_ordinal)
    starts, counts = count_per_period(ordinals, granularity, first_ordinal, last_ordinal)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "Granularity", "Series", "Timeline", "choose_granularity", "count_per_period", "period_filter",
    "period_label", "period_of",
]  # fmt: skip

Granularity = Literal["day", "month", "year"]
MAX_DAYS = 92  # a span up to about three months is shown day by day
MAX_MONTHS = 72  # up to six years month by month; longer spans year by year


@dataclass(frozen=True, slots=True)
class Series:
    """One topic's matches, counted per period of its :class:`Timeline`."""

    question: str
    counts: tuple[int, ...]  # parallel to Timeline.periods
    total: int  # every matching sentence, dated or not (a sentence said in two documents counts twice)
    undated: int  # matches in documents without a date (not in ``counts``)
    first: dt.date | None  # the earliest and latest dated match
    last: dt.date | None
    error: str | None = None  # the question could not be understood
    unknown_words: tuple[str, ...] = ()

    @property
    def busiest(self) -> int | None:
        """Index of the period with the most matches (the earliest of equals); None if there are none."""
        return int(np.argmax(self.counts)) if self.counts and max(self.counts) > 0 else None


@dataclass(frozen=True, slots=True)
class Timeline:
    """Several topics on one time axis: the same periods for all."""

    granularity: Granularity
    periods: tuple[dt.date, ...]  # the first day of each period, oldest first
    series: tuple[Series, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not any(s.total for s in self.series)


def choose_granularity(first: int, last: int) -> Granularity:
    """Day, month or year for a span from day ordinal ``first`` to ``last`` (inclusive)."""
    if last - first + 1 <= MAX_DAYS:
        return "day"
    a, b = dt.date.fromordinal(first), dt.date.fromordinal(last)
    months = (b.year - a.year) * 12 + b.month - a.month + 1
    return "month" if months <= MAX_MONTHS else "year"


def period_of(ordinals: np.ndarray, granularity: Granularity) -> np.ndarray:
    """The period number of each day ordinal: the ordinal itself, year * 12 + month - 1, or the year."""
    ordinals = np.asarray(ordinals, dtype=np.int64)
    if granularity == "day" or not ordinals.size:
        return ordinals.copy()
    unique, inverse = np.unique(ordinals, return_inverse=True)  # few distinct dates: convert those only
    dates = [dt.date.fromordinal(int(o)) for o in unique.tolist()]
    if granularity == "month":
        keys = np.array([d.year * 12 + d.month - 1 for d in dates], dtype=np.int64)
    else:
        keys = np.array([d.year for d in dates], dtype=np.int64)
    return keys[inverse]


def _period_start(key: int, granularity: Granularity) -> dt.date:
    if granularity == "day":
        return dt.date.fromordinal(key)
    if granularity == "month":
        return dt.date(key // 12, key % 12 + 1, 1)
    return dt.date(key, 1, 1)


def count_per_period(
    ordinals: np.ndarray, granularity: Granularity, first: int, last: int
) -> tuple[list[dt.date], np.ndarray]:
    """Matches per period from the period of ``first`` to that of ``last``, gaps as zeros.

    ``ordinals`` outside that span are not counted. Returns the periods' first days and the counts.
    """
    low, high = (int(k) for k in period_of(np.array([first, last]), granularity))
    keys = period_of(ordinals, granularity)
    keys = keys[(keys >= low) & (keys <= high)]
    counts = np.bincount(keys - low, minlength=high - low + 1)
    return [_period_start(k, granularity) for k in range(low, high + 1)], counts


def period_label(start: dt.date, granularity: Granularity) -> str:
    """How a period is written for people: ``2023-08-05``, ``Aug 2023`` or ``2023``."""
    if granularity == "day":
        return start.isoformat()
    if granularity == "month":
        return start.strftime("%b %Y")
    return str(start.year)


def period_filter(start: dt.date, granularity: Granularity) -> str:
    """The query syntax for the quotes of one period: ``on:2023-08-05``, ``on:2023-08`` or ``on:2023``."""
    if granularity == "day":
        return f"on:{start.isoformat()}"
    if granularity == "month":
        return f"on:{start.year:04d}-{start.month:02d}"
    return f"on:{start.year:04d}"

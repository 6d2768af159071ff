"""How the bot writes counts and dates, the same in Telegram and in the terminal (no Telegram imports)."""

from __future__ import annotations

import datetime as dt

__all__ = ["counted", "format_date", "format_timestamp"]


def counted(count: int, one: str, many: str | None = None) -> str:
    """``1 document``, ``1,234 documents`` (``many`` for irregular plurals)."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def format_date(date: dt.date | None) -> str:
    """``2023-08-05``, or ``date unknown`` for an undated document."""
    return date.isoformat() if date else "date unknown"


def format_timestamp(seconds: float) -> str:
    """``2026-12-01 15:20 UTC`` for a ``time.time()`` value."""
    return f"{dt.datetime.fromtimestamp(seconds, dt.UTC):%Y-%m-%d %H:%M} UTC"

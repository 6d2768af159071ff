"""Per-user flood protection for incoming questions.

Searching costs CPU, so one user sending questions in a loop must not slow the bot down for everyone.
:class:`QuestionLimiter` allows each user a number of questions in a sliding window (``limits.
questions_per_minute``); beyond that the question is refused. Only the *first* refusal in a streak asks to
be told to the user, so a flood of questions does not turn into a flood of "slow down" replies.

Outgoing flood control (Telegram's own limits on what the bot sends) is a different matter, handled by
python-telegram-bot's ``AIORateLimiter`` in :mod:`bot.app`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

_PRUNE_ABOVE = 10_000  # users remembered before idle ones are forgotten


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    retry_after: float = 0.0  # seconds until the user may ask again (when refused)
    notify: bool = False  # refused, and the first refusal since the last allowed question: say so once


class QuestionLimiter:
    """At most ``limit`` questions per user in any ``window`` seconds; ``limit`` 0 means no limit."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._asked: dict[int, deque[float]] = {}
        self._told: set[int] = set()

    def admit(self, user_id: int) -> Admission:
        """Record a question from ``user_id`` if allowed; never blocks."""
        if self.limit <= 0:
            return Admission(True)
        now = self._clock()
        # The dict is kept in order of last question (a user moves to the end when asking), so the idle
        # users are all at the front and pruning stops at the first active one.
        asked = self._asked.pop(user_id, None)
        if asked is None:
            if len(self._asked) >= _PRUNE_ABOVE:
                self._prune(now)
            asked = deque()
        self._asked[user_id] = asked
        while asked and asked[0] <= now - self.window:
            asked.popleft()
        if len(asked) < self.limit:
            asked.append(now)
            self._told.discard(user_id)
            return Admission(True)
        notify = user_id not in self._told
        self._told.add(user_id)
        return Admission(False, retry_after=max(0.0, asked[0] + self.window - now), notify=notify)

    def _prune(self, now: float) -> None:
        idle = []
        for user_id, asked in self._asked.items():
            if asked and asked[-1] > now - self.window:
                break  # everyone after this one asked more recently
            idle.append(user_id)
        for user_id in idle:
            del self._asked[user_id]
            self._told.discard(user_id)

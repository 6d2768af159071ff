"""Per-user flood protection: the limit, the one-time notice, and forgetting idle users cheaply."""

from __future__ import annotations

from bot import limits
from bot.limits import QuestionLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_per_user_with_one_notice_and_recovery() -> None:
    clock = Clock()
    limiter = QuestionLimiter(2, window=60, clock=clock)
    assert limiter.admit(1).allowed and limiter.admit(1).allowed
    refused = limiter.admit(1)
    assert not refused.allowed and refused.notify and refused.retry_after == 60
    assert not limiter.admit(1).notify  # told once only
    assert limiter.admit(2).allowed  # other users are not affected
    clock.now += 61
    assert limiter.admit(1).allowed


def test_idle_users_are_forgotten_and_active_ones_kept(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(limits, "_PRUNE_ABOVE", 100)
    clock = Clock()
    limiter = QuestionLimiter(2, window=60, clock=clock)
    for user in range(100):
        limiter.admit(user)
    clock.now += 30
    assert limiter.admit(5).allowed  # user 5 is active again
    clock.now += 40  # everyone else last asked 70 s ago: idle
    assert limiter.admit(1000).allowed  # a new user, over the threshold: idle users are dropped
    assert set(limiter._asked) == {5, 1000}

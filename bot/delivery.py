"""Sending answers through a bad day at Telegram: pacing, and retries bounded by time rather than by count.

Every Bot API call of the bot goes through :class:`DeliveryLimiter` (python-telegram-bot's rate-limiter
hook). For a call that carries an answer to a user (:data:`ANSWER_METHODS`) it

* **paces** the sends: at most ``private_rate`` a second to one private chat, ``group_rate`` a minute to
  one group and ``overall_rate`` a second in all (Telegram's published limits), so that flood control is
  rarely met at all. Each limit is an ``aiolimiter.AsyncLimiter`` (a leaky bucket);
* **retries** what may succeed later, for up to ``retry_for`` seconds from the first try: flood control
  (429: waits ``retry_after``, as many times as it takes), server errors (5xx), refused, dropped and
  timed-out connections, with exponential backoff and jitter so that a crowd of waiting answers does not
  return all at once. A call that still fails then raises its last error, counted as given up.

Errors that will not change on a retry (400 Bad Request, 403 Forbidden, a migrated chat, a rejected token)
are raised at once. Other calls (``getMe``, ``setWebhook``, chat actions…) are passed through untouched:
start-up has its own wait-and-retry loop, and a lost "typing…" is not worth a retry.

A failure can leave it unknown whether Telegram acted on a call: a read timeout, or a connection dropped
after the request went out. Such a call is sent again. A question that gets no answer looks like a broken
bot; one answered twice is a small annoyance, and it needs both a lost response and a Telegram that
acted, which is rare (``benchmarks/bench_delivery.py`` measures it).

Waiting happens in the task of the update being answered, so one chat under flood control or one slow
answer never holds up another chat.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut
from telegram.ext import BaseRateLimiter

from bot.http_client import never_sent

__all__ = ["ANSWER_METHODS", "RETRY_CAUSES", "DeliveryLimiter"]

logger = logging.getLogger(__name__)

# Bot API methods that deliver something a user waits for: paced and retried.
ANSWER_METHODS = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "editMessageText", "editMessageReplyMarkup",
    "editMessageCaption", "editMessageMedia", "answerCallbackQuery", "answerInlineQuery",
})  # fmt: skip
# Of those, the ones that put a message in a chat (Telegram's flood limits count these).
_CHAT_SENDS = ANSWER_METHODS - {"answerCallbackQuery", "answerInlineQuery"}
FIRST_BACKOFF = 0.5  # seconds before the first retry of a failed call; doubled each time
MAX_BACKOFF = 30.0  # ... up to this
_RETRY_AFTER_MARGIN = 0.1  # seconds added to Telegram's retry_after, so the retry lands after it
RETRY_CAUSES = ("flood", "server", "network", "timeout")
_CHAT_LIMITERS = 10_000  # idle per-chat limiters are dropped beyond this many chats


class DeliveryLimiter(BaseRateLimiter[None]):
    """Pacing and time-bounded retries for the answers (see the module docstring).

    ``counts`` tells what happened, for metrics and logs: ``retry_flood``, ``retry_server``,
    ``retry_network``, ``retry_timeout`` (retries by cause) and ``given_up`` (answers that failed for
    good after ``retry_for`` seconds).
    """

    def __init__(
        self,
        *,
        retry_for: float = 600.0,
        private_rate: float = 1.0,
        group_rate: float = 20.0,
        overall_rate: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.retry_for = retry_for
        self.private_rate = private_rate
        self.group_rate = group_rate
        self._overall = AsyncLimiter(overall_rate, 1) if overall_rate > 0 else None
        self._chats: dict[int | str, AsyncLimiter] = {}
        self._clock = clock
        self._rng = rng or random.Random()
        self.counts: Counter[str] = Counter()
        self._failing_since: float | None = None
        self._in_flight = 0
        self._closing = False

    @property
    def in_flight(self) -> int:
        """Answer calls sent and not yet answered by the Bot API."""
        return self._in_flight

    def close(self) -> None:
        """Send nothing more: a call about to be made, or to be tried again, raises ``CancelledError``
        (its update stays open in the inbox for the next start); calls already sent finish."""
        self._closing = True

    def failing_for(self) -> float:
        """Seconds since answers started failing on the Bot API's side (0 while they get through)."""
        return 0.0 if self._failing_since is None else self._clock() - self._failing_since

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> Any:
        if endpoint not in ANSWER_METHODS:
            return await callback(*args, **kwargs)
        deadline = self._clock() + self.retry_for
        chat = _chat_of(data) if endpoint in _CHAT_SENDS else None
        backoff = FIRST_BACKOFF
        while True:
            await self._pace(chat)
            if self._closing:
                raise asyncio.CancelledError("the bot is stopping: this answer waits for the next start")
            self._in_flight += 1
            try:
                result = await callback(*args, **kwargs)
            except RetryAfter as error:
                failure: Exception = error
                cause, wait = "flood", _seconds(error) + _RETRY_AFTER_MARGIN
                self._failing_since = None  # flood control: Telegram is there, and busy
            except NetworkError as error:
                failure, cause = error, _cause(error)
                if cause is None:
                    self._failing_since = None  # Telegram answered: it is reachable
                    raise
                if self._failing_since is None:
                    self._failing_since = self._clock()
                wait = backoff * self._rng.uniform(0.5, 1.5)
                backoff = min(backoff * 2, MAX_BACKOFF)
            else:
                self._failing_since = None
                return result
            finally:
                self._in_flight -= 1
            if self._clock() + wait > deadline:
                self.counts["given_up"] += 1
                logger.error("%s failed for %.0f s, giving up on this answer: %s",
                             endpoint, self.retry_for, _describe(cause))
                raise failure
            self.counts[f"retry_{cause}"] += 1
            logger.warning("%s failed (%s); trying again in %.1f s", endpoint, _describe(cause), wait)
            await asyncio.sleep(wait)

    async def _pace(self, chat: int | str | None) -> None:
        if chat is not None:
            limiter = self._chat_limiter(chat)
            if limiter is not None:
                await limiter.acquire()
        if self._overall is not None and chat is not None:
            await self._overall.acquire()

    def _chat_limiter(self, chat: int | str) -> AsyncLimiter | None:
        limiter = self._chats.get(chat)
        if limiter is None:
            group = not isinstance(chat, int) or chat < 0  # "@channel" names and negative ids are groups
            rate = self.group_rate if group else self.private_rate
            if rate <= 0:
                return None
            if len(self._chats) >= _CHAT_LIMITERS:
                self._forget_idle_chats()
            # A group may have a burst of group_rate in a minute (Telegram counts per minute); a private
            # chat gets one message each 1/private_rate seconds, never two at once.
            limiter = AsyncLimiter(rate, 60.0) if group else AsyncLimiter(1, 1 / rate)
            self._chats[chat] = limiter
        return limiter

    def _forget_idle_chats(self) -> None:
        for key in [key for key, limiter in self._chats.items() if limiter.has_capacity(limiter.max_rate)]:
            del self._chats[key]


def _chat_of(data: dict[str, Any]) -> int | str | None:
    chat = data.get("chat_id")
    if isinstance(chat, bool):
        return None
    if isinstance(chat, str) and chat.lstrip("-").isdigit():
        return int(chat)
    return chat if isinstance(chat, int | str) else None


def _cause(error: NetworkError) -> str | None:
    """Why a call failed, if trying again may help; None when it cannot (a bad request)."""
    if isinstance(error, BadRequest):
        return None
    if isinstance(error, TimedOut):
        return "network" if never_sent(error) else "timeout"
    if isinstance(error.__cause__, Exception):  # the HTTP client failed: no answer came back
        return "network"
    return "server"  # Telegram answered with a 5xx


def _describe(cause: str) -> str:
    return {
        "flood": "flood control",
        "server": "a Bot API server error",
        "network": "a failed or dropped connection",
        "timeout": "no answer in time",
    }[cause]


def _seconds(error: RetryAfter) -> float:
    wait = error._retry_after  # a timedelta; the public property warns about its future type
    return wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait)

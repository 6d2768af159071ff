"""Handling updates in order, a few at a time, and closing each one in the inbox when it is done.

:class:`OrderedUpdateProcessor` is python-telegram-bot's update-processor hook (what
``ApplicationBuilder.concurrent_updates`` takes). Around each update it

* keeps **one chat's updates in order**: a chat's updates are handled one after another, in the order
  they arrived (a FIFO lock per chat), so two questions from one user are answered in the order asked,
  even when the first answer waits out flood control; other chats go on meanwhile;
* bounds **concurrency** to ``concurrent_updates`` updates being handled at once. The slot is taken only
  once the chat's turn has come, so a chat with a long queue never holds slots that others could use;
* deals with **late questions**: one older than ``max_age`` (it waited in the inbox through an outage or a
  restart) is answered with a note saying so (:func:`lateness` tells the handler), or dropped when the
  operator chose ``late: drop``;
* **closes** the update in the :class:`~bot.inbox.Inbox` once its handler has finished: answered, or given
  up if its answer could not be delivered (:func:`give_up`, called by the error handler). An update whose
  handling is cancelled (the bot stops before it is done) stays open and is handled on the next start.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from bot.inbox import Inbox, Outcome

__all__ = ["OrderedUpdateProcessor", "give_up", "lateness"]

logger = logging.getLogger(__name__)

# python-telegram-bot's own limit on updates in process_update at once. Updates waiting for their chat's
# turn count against it, so it is far above ``concurrent_updates``: only a flood of one chat reaches it.
_WAITING_LIMIT = 4096


@dataclass
class _Handling:
    """What is known about the update the current task is handling."""

    late_by: float | None = None  # seconds, when it is older than max_age
    received: float | None = None  # Unix time it was first received
    given_up: bool = False


_CURRENT: contextvars.ContextVar[_Handling | None] = contextvars.ContextVar("handling", default=None)


def lateness() -> tuple[float, float] | None:
    """(seconds late, Unix time received) if the update being handled came later than ``max_age``."""
    handling = _CURRENT.get()
    if handling is None or handling.late_by is None or handling.received is None:
        return None
    return handling.late_by, handling.received


def give_up() -> None:
    """Mark the update being handled as not answered: its reply could not be delivered."""
    handling = _CURRENT.get()
    if handling is not None:
        handling.given_up = True


class OrderedUpdateProcessor(BaseUpdateProcessor):
    """Per-chat order, bounded concurrency, late questions and the inbox (see the module docstring).

    ``counts`` has ``late`` (answered with a note), ``dropped_late``, ``given_up`` and ``answered``.
    """

    def __init__(
        self,
        concurrent_updates: int,
        *,
        inbox: Inbox | None = None,
        max_age: float = 3600.0,
        drop_late: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(_WAITING_LIMIT)
        self.concurrent_updates = concurrent_updates
        self.inbox = inbox
        self.max_age = max_age
        self.drop_late = drop_late
        self.counts: Counter[str] = Counter()
        self._clock = clock
        self._slots: asyncio.Semaphore | None = None
        self._chats: dict[Any, _ChatTurn] = {}
        self._active = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._abandoned = False

    @property
    def handling(self) -> int:
        """Updates whose handlers are running now (not those waiting for their chat's turn)."""
        return self._active

    @property
    def in_hand(self) -> int:
        """Updates handed to the processor and not finished: running, or waiting for their turn."""
        return len(self._tasks)

    def abandon(self) -> int:
        """Stop now: cancel every update in hand, and close any that arrive later without handling them.

        They stay open in the inbox, for the next start. Returns how many were cancelled.
        """
        self._abandoned = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        return len(tasks)

    async def initialize(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrent_updates)

    async def shutdown(self) -> None:
        pass

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        if self._slots is None:
            await self.initialize()
        assert self._slots is not None
        if self._abandoned:
            _close(coroutine)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._in_turn(update, coroutine)
        finally:
            self._tasks.discard(task)

    async def _in_turn(self, update: object, coroutine: Awaitable[Any]) -> None:
        assert self._slots is not None
        key = _chat_key(update)
        if key is None:
            async with self._slots:
                await self._handle(update, coroutine)
            return
        turn = self._chats.get(key)
        if turn is None:
            turn = self._chats[key] = _ChatTurn()
        turn.users += 1
        try:
            async with turn.lock, self._slots:
                await self._handle(update, coroutine)
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._chats[key]

    async def _handle(self, update: object, coroutine: Awaitable[Any]) -> None:
        handling = _Handling()
        update_id = update.update_id if isinstance(update, Update) else None
        handling.received = self._received(update, update_id)
        age = None if handling.received is None else self._clock() - handling.received
        if age is not None and age > self.max_age:
            if self.drop_late:
                _close(coroutine)
                self.counts["dropped_late"] += 1
                logger.warning("update %s dropped: it came %.0f s late (delivery.late: drop)", update_id, age)
                self._finish(update_id, Outcome.DROPPED_LATE)
                return
            handling.late_by = age
            self.counts["late"] += 1
        token = _CURRENT.set(handling)
        self._active += 1
        try:
            await coroutine
        finally:
            self._active -= 1
            _CURRENT.reset(token)
        self.counts["given_up" if handling.given_up else "answered"] += 1
        self._finish(update_id, Outcome.GIVEN_UP if handling.given_up else Outcome.ANSWERED)

    def _received(self, update: object, update_id: int | None) -> float | None:
        times = []
        if self.inbox is not None and update_id is not None:
            received = self.inbox.received_at(update_id)
            if received is not None:
                times.append(received)
        message = update.message if isinstance(update, Update) else None
        if message is not None and message.date is not None:
            times.append(message.date.timestamp())
        return min(times) if times else None

    def _finish(self, update_id: int | None, outcome: Outcome) -> None:
        if self.inbox is not None and update_id is not None:
            self.inbox.finish(update_id, outcome)


class _ChatTurn:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()  # FIFO: waiters get it in the order they asked
        self.users = 0


def _chat_key(update: object) -> Any:
    """The chat whose order an update must keep; None for inline queries (nothing to keep in order)."""
    if not isinstance(update, Update) or update.inline_query is not None:
        return None
    chat = update.effective_chat
    if chat is not None:
        return chat.id
    user = update.effective_user
    return ("user", user.id) if user is not None else None


def _close(coroutine: Awaitable[Any]) -> None:
    close = getattr(coroutine, "close", None)
    if close is not None:
        close()  # never awaited on purpose: no "coroutine was never awaited" warning

"""Starting and stopping the bot without losing a question, shared by polling and webhook mode.

* :func:`when_reachable` runs a Bot API call that start-up needs (``getMe``, ``setWebhook``,
  ``deleteWebhook``) until it succeeds, waiting longer each time and saying so in the log, while the Bot API
  cannot be reached. A rejected token or a refused request is raised at once: those are the operator's
  to fix, and waiting would not help.
* :func:`accept` is the one way an update enters the bot: kept in the inbox first (before Telegram is told
  it arrived), then queued for handling; an ``update_id`` seen before is skipped.
* :func:`replay` queues what the inbox still holds from the last run, before any new update.
* :func:`stop_signals` routes SIGTERM and SIGINT to a service's ``stop`` while it runs.
* :func:`drain` stops handling: it lets the updates in hand finish within the drain time, leaves the rest
  open in the inbox for the next start, and logs true counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from telegram import Update
from telegram.error import BadRequest, InvalidToken, NetworkError
from telegram.ext import Application

from bot.delivery import DeliveryLimiter
from bot.inbox import Inbox, Outcome
from bot.processing import OrderedUpdateProcessor

__all__ = ["accept", "drain", "replay", "stop_signals", "when_reachable"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
IN_FLIGHT_GRACE = 10.0  # seconds answers already sent get to arrive once the drain time is up
HANDLERS_RETURN = 0.5  # seconds the handlers get to return once no answer is on its way any more
FIRST_WAIT = 1.0  # seconds before trying the Bot API again at start-up; doubled each time
MAX_WAIT = 60.0


async def when_reachable(
    call: Callable[[], Awaitable[_T]], *, what: str, where: str, stopping: asyncio.Event
) -> _T | None:
    """``await call()`` until it gets through; None if ``stopping`` is set while waiting.

    Network failures and server errors are waited out; :class:`InvalidToken` and :class:`BadRequest`
    (and any other error) are raised.
    """
    wait = FIRST_WAIT
    started = time.monotonic()
    while True:
        try:
            return await call()
        except InvalidToken:
            raise
        except NetworkError as error:
            if isinstance(error, BadRequest):
                raise
            logger.warning("cannot reach the Bot API at %s for %s (%s: %s); trying again in %.0f s "
                           "(waiting for %.0f s so far)", where, what, type(error).__name__, error,
                           wait, time.monotonic() - started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), wait)
        if stopping.is_set():
            return None
        wait = min(wait * 2, MAX_WAIT)


async def accept(application: Application, inbox: Inbox, update: Update, payload: str) -> bool:
    """Keep ``update`` in the inbox and queue it; False (and nothing queued) if it was seen before."""
    if not inbox.record(update.update_id, payload):
        logger.info("update %d was delivered again: already handled or in hand, skipped", update.update_id)
        return False
    await application.update_queue.put(update)
    return True


def replay(application: Application, inbox: Inbox, *, drop: bool = False) -> int:
    """Queue the updates the inbox holds from before (or close them, with ``drop``); returns how many."""
    pending = inbox.unfinished()
    if not pending:
        return 0
    if drop:
        for item in pending:
            inbox.finish(item.update_id, Outcome.DROPPED_LATE)
        logger.warning("%d update(s) from before the restart dropped (drop_pending_updates)", len(pending))
        return 0
    queued = 0
    for item in pending:
        try:
            update = Update.de_json(json.loads(item.payload), application.bot)
        except Exception as error:  # a row that no longer parses: say so once, never loop on it
            logger.error("update %d in the inbox cannot be read (%s); closed without an answer",
                         item.update_id, error)
            inbox.finish(item.update_id, Outcome.GIVEN_UP)
            continue
        application.update_queue.put_nowait(update)
        queued += 1
    oldest = time.time() - pending[0].received
    logger.info("answering %d update(s) left from before the restart (the oldest waited %.0f s)",
                queued, oldest)
    return queued


async def drain(application: Application, inbox: Inbox | None, *, timeout: float,
                force: asyncio.Event | None = None) -> None:
    """Stop the Application: updates in hand get ``timeout`` seconds, the rest stay in the inbox."""
    if not application.running:
        return
    started = time.monotonic()
    processor = application.update_processor
    ordered = processor if isinstance(processor, OrderedUpdateProcessor) else None
    in_hand = application.update_queue.qsize() + (ordered.in_hand if ordered else 0)
    finished_before = _finished(ordered)
    stopping = asyncio.create_task(application.stop(), name="drain")
    waits: set[asyncio.Future[object]] = {stopping}
    forced = asyncio.ensure_future(force.wait()) if force is not None else None
    if forced is not None:
        waits.add(forced)
    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    limiter = application.bot.rate_limiter
    if not stopping.done() and not (force and force.is_set()) and isinstance(limiter, DeliveryLimiter):
        # Time is up: nothing more is sent, but answers already on their way get a moment to arrive
        # (cancelled now, Telegram would likely deliver them anyway and the next start send them again).
        limiter.close()
        deadline = time.monotonic() + IN_FLIGHT_GRACE
        answers_on_their_way = limiter.in_flight > 0
        while limiter.in_flight and not stopping.done() and time.monotonic() < deadline:
            if force is not None and force.is_set():
                break
            await asyncio.wait({stopping}, timeout=0.05)
        if answers_on_their_way and not limiter.in_flight and not (force and force.is_set()):
            # The last answer has arrived; its handler still has to return and the Application to
            # notice: a moment for that, so a stop with nothing left undone is not reported as cut short.
            await asyncio.wait({stopping}, timeout=HANDLERS_RETURN)
    if forced is not None:
        forced.cancel()
    finished = _finished(ordered) - finished_before
    if stopping.done():
        stopping.result()
        logger.info("stopped: %d update(s) in hand, all %d finished, in %.1f s",
                    in_hand, finished, time.monotonic() - started)
        return
    cancelled = ordered.abandon() if ordered else 0
    stopping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stopping
    left = inbox.depth() if inbox is not None else cancelled + application.update_queue.qsize()
    logger.warning("stopped after %.1f s (delivery.drain_timeout): %d of %d update(s) in hand finished; "
                   "%d left in the inbox for the next start", time.monotonic() - started, finished,
                   in_hand, left)


@contextlib.contextmanager
def stop_signals(stop: Callable[[int], None], enabled: bool = True) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT call ``stop(signum)`` on the running loop (nothing if not
    ``enabled``: tests run services without touching the process's signals)."""
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    handled = (signal.SIGTERM, signal.SIGINT)
    for signum in handled:
        loop.add_signal_handler(signum, stop, signum)
    try:
        yield
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def _finished(processor: OrderedUpdateProcessor | None) -> int:
    if processor is None:
        return 0
    counts = processor.counts
    return counts["answered"] + counts["given_up"] + counts["dropped_late"]

"""Polling mode: the bot fetches its updates with long ``getUpdates`` calls; nothing but a token needed.

Telegram forgets the updates of a ``getUpdates`` answer once the next call's ``offset`` is past them. The
:class:`Poller` therefore keeps every update of an answer in the inbox *before* it asks for the next
ones, so a bot killed at any moment loses nothing: what Telegram has forgotten is on disk, and what is not
on disk Telegram delivers again (and an update delivered twice is handled once). python-telegram-bot's
``Updater`` puts updates in a queue in memory and confirms them with its next call, which is why it is
not used here.

    corpus-bot run                       # TELEGRAM_BOT_TOKEN in the environment

:func:`run_polling` is the whole of polling mode: wait for the Bot API if it is down, answer what the
inbox kept from the last run, poll until SIGTERM / SIGINT, then :func:`bot.lifecycle.drain`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from typing import TYPE_CHECKING

from telegram.error import BadRequest, Conflict, InvalidToken, NetworkError
from telegram.ext import Application

from bot.app import ALLOWED_UPDATES, build_application, setup_bot
from bot.config import ConfigError, Settings
from bot.inbox import Inbox
from bot.lifecycle import accept, drain, replay, stop_signals, when_reachable
from bot.systemd import notify

if TYPE_CHECKING:
    from retrieval import LiveIndex, SearchIndex

__all__ = ["Poller", "PollingService", "run_polling"]

logger = logging.getLogger(__name__)

POLL_TIMEOUT = 30  # seconds Telegram holds a getUpdates call open when there is nothing new
FIRST_BACKOFF = 1.0  # seconds after a failed getUpdates; doubled each time
MAX_BACKOFF = 30.0


class Poller:
    """Fetches updates into the inbox and the Application's queue until :meth:`stop`."""

    def __init__(self, application: Application, inbox: Inbox, *, timeout: float = POLL_TIMEOUT,
                 where: str = "the Bot API") -> None:
        self.application = application
        self.inbox = inbox
        self.timeout = timeout
        self.where = where
        self.offset: int | None = None
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Poll until :meth:`stop`; a failed call is retried with backoff, logged once per outage."""
        backoff = FIRST_BACKOFF
        failing = False
        while not self._stopping.is_set():
            fetch = asyncio.ensure_future(self._fetch())
            stopping = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not fetch.done():  # asked to stop during a long poll: nothing fetched is lost, the
                fetch.cancel()    # offset of this call was never answered, so Telegram still has it
                with contextlib.suppress(asyncio.CancelledError):
                    await fetch
                return
            try:
                fetch.result()
            except (InvalidToken, BadRequest):
                raise
            except (NetworkError, Conflict) as error:
                if not failing:
                    logger.warning("getUpdates failed (%s: %s); trying again, waiting up to %.0f s between "
                                   "tries", type(error).__name__, error, MAX_BACKOFF)
                failing = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if failing:
                logger.info("getUpdates works again")
            failing, backoff = False, FIRST_BACKOFF

    async def _fetch(self) -> None:
        updates = await self.application.bot.get_updates(
            offset=self.offset, timeout=self.timeout, allowed_updates=ALLOWED_UPDATES,
            read_timeout=self.timeout + 10,
        )
        for update in updates:
            # In the inbox before the next call's offset tells Telegram to forget it.
            await accept(self.application, self.inbox, update, json.dumps(update.to_dict()))
            self.offset = update.update_id + 1


class PollingService:
    """Polling mode from start to stop; ``await service.serve()`` until :meth:`stop` or a signal."""

    def __init__(self, settings: Settings, index: SearchIndex | LiveIndex, token: str, *,
                 poll_timeout: float = POLL_TIMEOUT) -> None:
        self.settings = settings
        self.inbox = Inbox.open(settings.inbox_path, retention_days=settings.delivery.retention_days)
        self.application = build_application(settings, index, token, inbox=self.inbox)
        self.poller = Poller(self.application, self.inbox, timeout=poll_timeout,
                             where=settings.telegram.base_url)
        self._stopping = asyncio.Event()
        self._force = asyncio.Event()

    def stop(self, signum: int | None = None) -> None:
        """What SIGTERM does; a second call stops waiting for the updates in hand."""
        if self._stopping.is_set():
            logger.warning("asked again to stop: not waiting for the updates in hand any longer")
            self._force.set()
            return
        if signum is not None:
            logger.info("%s received: stopping", signal.Signals(signum).name)
        self._stopping.set()
        self.poller.stop()

    async def serve(self, *, handle_signals: bool = False) -> None:
        settings = self.settings
        where = settings.telegram.base_url
        application = self.application
        try:
            with stop_signals(self.stop, handle_signals):
                async def initialize() -> bool:
                    await application.initialize()  # getMe
                    return True

                if not await when_reachable(initialize, what="getMe", where=where, stopping=self._stopping):
                    return  # stopped while waiting
                try:
                    await self._run(where)
                finally:
                    await application.shutdown()
        except InvalidToken:
            raise ConfigError(f"Telegram rejected the bot token in {settings.telegram.token_env} "
                              "(telegram.token_env)") from None
        finally:
            self.inbox.close()

    async def _run(self, where: str) -> None:
        application = self.application
        drop = self.settings.telegram.drop_pending_updates
        await setup_bot(application)
        # Polling works only while no webhook is set (an earlier run in webhook mode may have set one).
        deleted = await when_reachable(
            lambda: application.bot.delete_webhook(drop_pending_updates=drop),
            what="deleteWebhook", where=where, stopping=self._stopping,
        )
        if deleted is None:
            return
        await application.start()
        try:
            replay(application, self.inbox, drop=drop)
            logger.info("polling %s for updates", where)
            notify("READY=1", "STATUS=polling for updates")
            await self.poller.run()
        finally:
            notify("STOPPING=1")
            await drain(application, self.inbox, timeout=self.settings.delivery.drain_timeout,
                        force=self._force)


def run_polling(settings: Settings, index: SearchIndex | LiveIndex, token: str) -> None:
    """``corpus-bot run``: poll until SIGTERM / SIGINT, then stop cleanly (exit status 0). ``index`` is a
    fixed ``SearchIndex`` or a ``LiveIndex`` (each answer uses the generation current when it starts)."""
    logger.info("starting in polling mode against %s", settings.telegram.base_url)
    service = PollingService(settings, index, token)
    asyncio.run(service.serve(handle_signals=True))

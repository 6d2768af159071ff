"""Webhook mode: the bot as an HTTP service that Telegram calls, behind a reverse proxy that terminates TLS.

Polling needs nothing but a token, but it keeps a long request open to Telegram all the time and cannot be
load-balanced or health-checked. In webhook mode Telegram POSTs each update to a public HTTPS URL; nginx
(``deploy/nginx/``) terminates TLS there and passes the request to this service on 127.0.0.1. The service
is a small Starlette app on uvicorn (the pattern python-telegram-bot documents for custom webhook servers)
around the very ``Application`` polling mode runs (:func:`bot.app.build_application`): same handlers, same
replies.

Run it::

    export TELEGRAM_BOT_TOKEN=123456:ABC... TELEGRAM_WEBHOOK_SECRET=$(openssl rand -hex 32)
    corpus-bot run --mode webhook --config config.yaml      # webhook.url: https://bot.example.org/telegram

Endpoints (on ``webhook.listen``:``webhook.port``; only ``webhook.path`` is meant to be public):

* ``POST {webhook.path}``: an update from Telegram. The ``X-Telegram-Bot-Api-Secret-Token`` header must
  equal the secret (compared in constant time; otherwise 403 and nothing is read). A body that is not
  JSON or not an update gets 400. A valid update is kept in the inbox (:mod:`bot.inbox`), put on the
  Application's update queue and answered 200; the search and the reply happen after, so Telegram never
  waits on them. An update delivered again is answered 200 and not handled twice.
* ``GET /healthz``: 200 while the process serves. ``GET /readyz``: 200 once the index is loaded and the
  webhook is set, 503 while starting or stopping, or once answers have failed on the Bot API's side for
  ``UNREACHABLE_AFTER`` seconds. ``GET /metrics``: Prometheus text (:mod:`bot.metrics`).

Start: check the settings and the secret (before the index is loaded: a typo fails in a second), bind the
port, initialise the Application (``getMe``, waited for while the Bot API is unreachable), the command
menu, start handling updates (first those the inbox kept from the last run), start the HTTP server, and
only then ``setWebhook`` (URL, secret, the update types the bot handles), so Telegram never posts to a
closed port. Stop (SIGTERM or SIGINT): not ready any more, the HTTP server stops accepting and finishes the
requests it has, then :func:`bot.lifecycle.drain` gives the updates in hand ``delivery.drain_timeout``
seconds and leaves the rest in the inbox for the next start; the process exits 0. One that arrives while
the service is down gets no answer from it, and Telegram keeps it and delivers it again to the next process
(the webhook stays set across restarts on purpose).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.error import BadRequest, InvalidToken
from telegram.ext import Application

from bot.app import ALLOWED_UPDATES, build_application, protect_token_in_logs, request_options, setup_bot
from bot.config import ConfigError, Settings
from bot.delivery import DeliveryLimiter
from bot.handlers import SERVICES_KEY, Services
from bot.inbox import Inbox
from bot.lifecycle import accept, drain, replay, stop_signals, when_reachable
from bot.metrics import CONTENT_TYPE, BotMetrics, MetricsRequest, TimedIndex
from bot.processing import OrderedUpdateProcessor
from bot.systemd import notify

if TYPE_CHECKING:
    from retrieval import LiveIndex, SearchIndex

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SERVICE_PATHS = ("/healthz", "/readyz", "/metrics")
MAX_BODY_BYTES = 1024 * 1024  # Telegram's updates are a few KiB; nginx's site allows 1 MiB too
HTTP_GRACE = 5.0  # seconds the HTTP server gives requests in progress when stopping
UNREACHABLE_AFTER = 60.0  # seconds of failing answers after which /readyz says the Bot API is unreachable
KEEP_ALIVE = 75  # seconds an idle proxy connection stays open: longer than nginx's upstream keepalive
BODY_TIMEOUT = 10.0  # seconds to receive a whole body (Telegram's are a few KiB)
MAX_CONCURRENCY = 512  # connections + requests in progress; beyond, 503 (the unit allows 65,536 files)
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Telegram's rule for setWebhook's secret_token
_WARN_EVERY = 60.0  # seconds between two warnings about refused requests


# -- settings ------------------------------------------------------------------------------------------


def check_webhook_settings(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """Check what webhook mode needs beyond a valid config file and return the secret token.

    Raises :class:`ConfigError` with one line naming the key: no ``webhook.url``, a URL that is not https
    or whose path is not ``webhook.path``, a path taken by the service's own endpoints, or a secret that is
    missing or not what Telegram accepts. The secret is never part of a message.
    """
    webhook = settings.webhook
    where = f"{settings.source}: " if settings.source else ""
    url = webhook.url
    if not url:
        raise ConfigError(f"{where}'webhook.url' must be set in webhook mode: the public https:// URL "
                          "Telegram posts updates to (webhook.url)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise ConfigError(f"{where}'webhook.url' is not a valid URL: {url!r} (webhook.url)") from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ConfigError(f"{where}'webhook.url' must be an https:// URL (Telegram only posts over TLS), "
                          f"got {url!r} (webhook.url)")
    if (parts.path or "/") != webhook.path:
        raise ConfigError(f"{where}the path of 'webhook.url' ({parts.path or '/'!r}) must be 'webhook.path' "
                          f"({webhook.path!r}): nginx passes that path to the service (webhook.path)")
    if webhook.path in SERVICE_PATHS:
        raise ConfigError(f"{where}'webhook.path' cannot be {webhook.path!r}: the service uses "
                          f"{', '.join(SERVICE_PATHS)} itself (webhook.path)")
    return read_secret(settings, environ)


def read_secret(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The webhook secret from the environment variable named by ``webhook.secret_token_env``."""
    env = os.environ if environ is None else environ
    name = settings.webhook.secret_token_env
    secret = (env.get(name) or "").strip()
    if not secret:
        raise ConfigError(f"environment variable {name} is not set: webhook mode needs a secret token, "
                          "e.g. from `openssl rand -hex 32` (webhook.secret_token_env)")
    if not _SECRET.fullmatch(secret):
        raise ConfigError(f"environment variable {name} must be 1-256 characters of A-Z, a-z, 0-9, _ and - "
                          "(Telegram's rule for the secret token) (webhook.secret_token_env)")
    return secret


# -- the service ---------------------------------------------------------------------------------------


class WebhookService:
    """The Starlette app, the uvicorn server and the Application, started and stopped in the right order.

    ``await service.serve()`` runs until :meth:`stop` (or, with ``handle_signals``, SIGTERM / SIGINT).
    ``port`` is the port actually bound (useful with ``webhook.port: 0`` in tests).
    """

    def __init__(
        self,
        settings: Settings,
        index: SearchIndex | LiveIndex,
        token: str,
        secret: str,
        *,
        drain_timeout: float | None = None,
        http_grace: float = HTTP_GRACE,
    ) -> None:
        self.settings = settings
        self.drain_timeout = settings.delivery.drain_timeout if drain_timeout is None else drain_timeout
        self.http_grace = http_grace
        self.port: int | None = None
        protect_token_in_logs(secret)  # python-telegram-bot logs setWebhook's arguments at DEBUG
        self.metrics = BotMetrics()
        metrics = self.metrics
        request = MetricsRequest(metrics, **request_options(settings))
        self.inbox = Inbox.open(settings.inbox_path, retention_days=settings.delivery.retention_days)
        self.application: Application = build_application(
            settings, index, token, request=request, inbox=self.inbox,
            wrap=lambda generation: TimedIndex(generation, metrics),  # type: ignore[arg-type,return-value]
        )
        self.services: Services = self.application.bot_data[SERVICES_KEY]
        services = self.services
        metrics.track_index(lambda: services.index, services.stats_of, services.status)
        metrics.track_meaning(lambda: services.index)
        processor = self.application.update_processor
        assert isinstance(processor, OrderedUpdateProcessor)
        limiter = self.application.bot.rate_limiter
        assert isinstance(limiter, DeliveryLimiter)
        self._limiter = limiter
        self.metrics.track_queue(
            lambda: self.application.update_queue.qsize() + processor.in_hand - processor.handling,
            lambda: processor.handling,
        )
        self.metrics.track_delivery(self.inbox, limiter, processor)
        self.asgi = Starlette(routes=[
            Route(settings.webhook.path, self._receive_update, methods=["POST"]),
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/readyz", self._readyz, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
        ])
        self._secret = secret.encode("ascii")
        self._webhook_set = False
        self._stopping = False
        self._stop_requested: asyncio.Event | None = None
        self._force: asyncio.Event | None = None
        self._server: _Server | None = None
        self._refusals = _RefusalLog()

    @property
    def drop_pending_updates(self) -> bool:
        """Either section may ask for it: an operator coming from polling mode set it under telegram."""
        return self.settings.webhook.drop_pending_updates or self.settings.telegram.drop_pending_updates

    @property
    def ready(self) -> bool:
        return self._webhook_set and not self._stopping and self.application.running and self.reachable

    @property
    def reachable(self) -> bool:
        """False once answers have failed on the Bot API's side for ``UNREACHABLE_AFTER`` seconds."""
        return self._limiter.failing_for() < UNREACHABLE_AFTER

    # ---------------------------------------------------------------- lifecycle

    async def serve(self, *, handle_signals: bool = False) -> None:
        """Start, serve until asked to stop, then stop without losing an accepted update."""
        self._stop_requested, self._force = asyncio.Event(), asyncio.Event()
        with stop_signals(self.stop, handle_signals), _bound_socket(self.settings) as sock:
            self.port = sock.getsockname()[1]
            try:
                await self._serve(sock)
            except InvalidToken:
                raise ConfigError(f"Telegram rejected the bot token in {self.settings.telegram.token_env} "
                                  "(telegram.token_env)") from None
            finally:
                self.inbox.close()

    def stop(self, signum: int | None = None) -> None:
        """Ask the service to stop (what SIGTERM does). A second call stops waiting for updates in flight."""
        if self._stop_requested is None:
            return
        if self._stop_requested.is_set():
            logger.warning("asked again to stop: not waiting for the updates in flight any longer")
            assert self._force is not None
            self._force.set()
            if self._server is not None:
                self._server.force_exit = True
            return
        if signum is not None:
            logger.info("%s received: stopping", signal.Signals(signum).name)
        self._stopping = True
        self._stop_requested.set()

    async def _serve(self, sock: socket.socket) -> None:
        assert self._stop_requested is not None
        application = self.application
        where = self.settings.telegram.base_url

        async def initialize() -> bool:
            await application.initialize()  # getMe
            return True

        if not await when_reachable(initialize, what="getMe", where=where, stopping=self._stop_requested):
            return  # asked to stop while waiting for the Bot API
        try:
            await setup_bot(application)
            await application.start()
            replay(application, self.inbox, drop=self.drop_pending_updates)
            self._server = _Server(self._uvicorn_config())
            serving = asyncio.create_task(self._server.serve(sockets=[sock]), name="webhook-http")
            try:
                if await self._until_listening(serving) and await when_reachable(
                    self._set_webhook, what="setWebhook", where=where, stopping=self._stop_requested
                ):
                    self._webhook_set = True
                    self.metrics.ready.set(1)
                    self._log_ready()
                    notify("READY=1", f"STATUS=answering at {self.settings.webhook.url}")
                    stop_requested = asyncio.create_task(self._stop_requested.wait())
                    await asyncio.wait({serving, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
                    stop_requested.cancel()
            finally:
                self._stopping = True
                notify("STOPPING=1")
                self.metrics.ready.set(0)
                self._server.should_exit = True
                try:
                    await serving  # stops accepting, answers the requests it has (HTTP_GRACE at most)
                finally:
                    await drain(application, self.inbox, timeout=self.drain_timeout, force=self._force)
        finally:
            await application.shutdown()

    async def _until_listening(self, serving: asyncio.Task[None]) -> bool:
        """Wait until uvicorn listens; False if it stopped, or a stop was asked for, before that."""
        assert self._server is not None and self._stop_requested is not None
        while not self._server.started:
            if serving.done() or self._stop_requested.is_set():
                return False
            await asyncio.sleep(0.005)
        return True

    async def _set_webhook(self) -> bool:
        """Register the webhook; a refusal (400) names ``webhook.url``, a server error is retried."""
        webhook = self.settings.webhook
        try:
            return await self.application.bot.set_webhook(
                url=webhook.url,  # type: ignore[arg-type]  (checked by check_webhook_settings)
                secret_token=self._secret.decode("ascii"),
                allowed_updates=ALLOWED_UPDATES,
                max_connections=webhook.max_connections,
                drop_pending_updates=self.drop_pending_updates,
            )
        except BadRequest as error:
            raise ConfigError(f"Telegram refused the webhook {webhook.url!r}: {error} (webhook.url)") \
                from None

    def _uvicorn_config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.asgi,
            log_config=None,  # the bot's logging set-up applies
            access_log=False,  # no line per request; /metrics counts them
            lifespan="off",  # the service starts and stops the Application itself, in its own order
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE,
            timeout_graceful_shutdown=self.http_grace,
            # Beyond this many connections and requests at once, new requests get 503 at once instead of
            # piling up (Telegram opens webhook.max_connections, at most 100; nginx pools 16).
            limit_concurrency=MAX_CONCURRENCY,
            backlog=1024,
        )

    def _log_ready(self) -> None:
        webhook = self.settings.webhook
        stats = self.services.stats
        logger.info("webhook service ready: %s -> http://%s:%d%s (%d documents, %d sentences)",
                    webhook.url, webhook.listen, self.port, webhook.path, stats.documents, stats.sentences)

    # ---------------------------------------------------------------- endpoints

    async def _receive_update(self, request: Request) -> Response:
        supplied = request.headers.get(SECRET_HEADER, "").encode("latin-1")  # how Starlette decoded it
        if not hmac.compare_digest(supplied, self._secret):
            return self._refuse(403, "secret", "wrong or missing secret token")
        if not self.application.running:  # not yet, or not any more: Telegram will deliver it again
            return self._refuse(503, "not_running", "not handling updates right now")
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                body = await _read_body(request, MAX_BODY_BYTES)
        except TimeoutError:
            return self._refuse(408, "slow", f"body not received within {BODY_TIMEOUT:.0f} s")
        except ClientDisconnect:  # the client went away mid-body: nobody to answer
            self._refusals.note("client disconnected before sending the whole body")
            self.metrics.webhook_rejected.labels("disconnected").inc()
            return Response(status_code=400)
        if body is None:
            return self._refuse(413, "too_large", f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than Python reads
            return self._refuse(400, "malformed", "body is not JSON")
        if not _looks_like_update(data):
            return self._refuse(400, "malformed", "body is not a Telegram update")
        try:
            update = Update.de_json(data, self.application.bot)
        except Exception:  # python-telegram-bot raises whatever the malformed part provokes
            return self._refuse(400, "malformed", "body is not a Telegram update")
        self.metrics.count_update(_update_kind(data))
        # In the inbox before the 200 (after which Telegram forgets it); handled after, by the Application.
        await accept(self.application, self.inbox, update, _as_text(body, data))
        return Response(status_code=200)

    def _refuse(self, status: int, reason: str, why: str) -> Response:
        self.metrics.webhook_rejected.labels(reason).inc()
        self._refusals.note(why)
        return JSONResponse({"ok": False, "error": why}, status_code=status)

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def _readyz(self, request: Request) -> Response:
        if self.ready:
            return JSONResponse({"status": "ready"})
        if self._stopping:
            reason = "stopping"
        elif self._webhook_set and not self.reachable:
            reason = f"the Bot API has been unreachable for {self._limiter.failing_for():.0f} s"
        else:
            reason = "starting"
        return JSONResponse({"status": reason}, status_code=503)

    async def _metrics(self, request: Request) -> Response:
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling.

    uvicorn would catch SIGTERM and raise it again once its server stopped, ending the process before the
    Application had answered the updates it accepted; :class:`WebhookService` handles the signals instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _RefusalLog:
    """Refused requests are logged at most once a minute: a scanner must not flood the log."""

    def __init__(self) -> None:
        self._last = float("-inf")
        self._count = 0

    def note(self, why: str) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= _WARN_EVERY:
            logger.warning("refused %d webhook request(s) since the last warning; latest: %s",
                           self._count, why)
            self._last, self._count = now, 0


@contextlib.contextmanager
def _bound_socket(settings: Settings) -> Iterator[socket.socket]:
    """The listening address, bound before anything else so that a taken port fails fast."""
    webhook = settings.webhook
    try:
        infos = socket.getaddrinfo(webhook.listen, webhook.port, type=socket.SOCK_STREAM,
                                   proto=socket.IPPROTO_TCP)
        family, kind, proto, _, address = infos[0]
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP.
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {webhook.listen}:{webhook.port}: {error.strerror or error} (webhook.listen)"
        ) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"cannot listen on {webhook.listen}:{webhook.port}: {error.strerror or error} (webhook.port)"
        ) from None
    try:
        yield sock
    finally:
        sock.close()


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None if it is larger than ``limit`` bytes (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _as_text(body: bytes, data: Any) -> str:
    """The update as Telegram sent it (UTF-8 JSON), for the inbox; re-encoded only if it was not UTF-8."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return json.dumps(data, ensure_ascii=False)


def _looks_like_update(data: Any) -> bool:
    update_id = data.get("update_id") if isinstance(data, dict) else None
    return isinstance(update_id, int) and not isinstance(update_id, bool)


def _update_kind(data: dict[str, Any]) -> str:
    return next((key for key in data if key != "update_id"), "none")


# -- entry point ---------------------------------------------------------------------------------------


def run_webhook(settings: Settings, index: SearchIndex | LiveIndex, token: str) -> None:
    """``corpus-bot run --mode webhook``: serve until SIGTERM / SIGINT, then stop cleanly (exit status 0).

    Raises :class:`ConfigError` (one line naming the key) for settings webhook mode cannot work with, a
    port that cannot be bound, a token Telegram rejects or a webhook it refuses.
    """
    secret = check_webhook_settings(settings)
    _quiet_server_logs(settings)
    service = WebhookService(settings, index, token, secret)
    try:  # uvloop (and httptools, which uvicorn picks by itself) cut the latency under load
        import uvloop
    except ImportError:  # not on every platform; the standard loop works the same, only slower
        asyncio.run(service.serve(handle_signals=True))
    else:
        uvloop.run(service.serve(handle_signals=True))


def _quiet_server_logs(settings: Settings) -> None:
    """One line when the service is ready and one when it stopped: uvicorn's and the Application's own
    start/stop chatter only at DEBUG."""
    if settings.log_level <= logging.DEBUG:
        return
    for name in ("uvicorn", "uvicorn.error", "telegram.ext.Application"):
        logging.getLogger(name).setLevel(logging.WARNING)


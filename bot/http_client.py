"""The HTTP client of every Bot API call: python-telegram-bot's ``BaseRequest`` on aiohttp.

python-telegram-bot ships an httpx client. It works, but every call costs about 2 ms of CPU in httpx's
pure-Python HTTP/1.1 stack, and a reply is one call: under load the client, not the search, was most of
what the bot did (``benchmarks/bench_webhook.py``). aiohttp parses HTTP in C and pools connections
cheaply; the same call costs about 0.6 ms. Parameters go out as one JSON body (the Bot API accepts
``application/json``; the form encoding python-telegram-bot uses is the slower way to say the same
thing), and multipart/form-data only when a call uploads a file.

Timeouts mean what they mean to python-telegram-bot: ``connect_timeout`` to open a connection,
``pool_timeout`` to wait for a free one (aiohttp bounds the two together, by their sum),
``read_timeout`` between two reads of the answer (a long poll passes its own); the whole call is
bounded by the sum of all four, ``write_timeout`` included (aiohttp has no write timeout of its own).
A call that times out raises ``TimedOut``; any other failure ``NetworkError``, with a message that never
contains the URL (it holds the token).
:func:`never_sent` tells apart the failures where the request certainly did not reach Telegram, which
are the only ones safe to retry.

    request = AiohttpRequest(connection_pool_size=8, connect_timeout=5, read_timeout=10)
    application = ApplicationBuilder().token(token).request(request).build()
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

__all__ = ["AiohttpRequest", "never_sent"]

_TOKEN_PATH = re.compile(r"/bot[^/\s'\"]+")


class AiohttpRequest(BaseRequest):
    """A pool of at most ``connection_pool_size`` keep-alive connections to the Bot API.

    The session is made in :meth:`initialize` (inside the running event loop, as aiohttp requires) and
    closed in :meth:`shutdown`; python-telegram-bot calls both. Proxies from the usual environment
    variables (``HTTPS_PROXY``, ``NO_PROXY``…) are honoured, as python-telegram-bot's own client does;
    they are looked up once per host (aiohttp's ``trust_env`` would read them, and ``~/.netrc``, in a
    worker thread on every call).
    """

    __slots__ = ("_connect_timeout", "_media_write_timeout", "_pool_size", "_pool_timeout",
                 "_proxies", "_read_timeout", "_session", "_write_timeout")  # fmt: skip

    def __init__(
        self,
        *,
        connection_pool_size: int = 8,
        connect_timeout: float | None = 5.0,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._pool_size = connection_pool_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=self._pool_size)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.USER_AGENT},
                # The Bot API answers JSON; python-telegram-bot parses it. No cookies are involved.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data and request_data.contains_files else None
        unset = BaseRequest.DEFAULT_NONE  # "not given": the documented way to tell it from None
        read = self._read_timeout if read_timeout is unset else read_timeout
        connect = self._connect_timeout if connect_timeout is unset else connect_timeout
        pool = self._pool_timeout if pool_timeout is unset else pool_timeout
        if write_timeout is unset:
            write_timeout = self._media_write_timeout if files else self._write_timeout
        timeout = aiohttp.ClientTimeout(
            total=_total(connect, pool, write_timeout, read),
            # aiohttp's "connect" covers the wait for a pooled connection and opening a new one.
            connect=_total(connect, pool),
            sock_connect=connect,
            sock_read=read,
        )
        body: Any = None
        headers: dict[str, str] | None = None
        if files:
            body = _form(request_data.json_parameters, files)  # type: ignore[union-attr]
        elif request_data is not None and request_data.parameters:
            body = _json_body(request_data.parameters)
            headers = {"Content-Type": "application/json"}
        try:
            proxy = self._proxy_for(url)
            async with session.request(
                method, url, data=body, headers=headers, timeout=timeout, proxy=proxy
            ) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as error:
            raise TimedOut(
                "Could not connect to the Bot API in time, or every pooled connection stayed busy: "
                "the request was not sent"
            ) from error
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}: {_without_url(str(error), url)}") from error

    def _proxy_for(self, url: str) -> str | None:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxies:
            proxy = urllib.request.getproxies().get(parts.scheme)
            self._proxies[key] = None if not proxy or urllib.request.proxy_bypass(key[1]) else proxy
        return self._proxies[key]


def never_sent(error: NetworkError) -> bool:
    """True when ``error`` certainly happened before the request reached the Bot API (no connection could
    be opened, or none was free), so trying again cannot deliver a message twice."""
    cause = error.__cause__
    return isinstance(cause, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError)


def _form(parameters: dict[str, str], files: dict[str, Any]) -> aiohttp.FormData:
    form = aiohttp.FormData(quote_fields=False)
    for name, value in parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in files.items():
        form.add_field(name, content, filename=filename or name, content_type=mimetype)
    return form


def _json_body(parameters: dict[str, Any]) -> bytes:
    """The parameters as one JSON object, values with their own types (python-telegram-bot's
    ``json_payload`` would encode every value as a string of JSON)."""
    try:
        return json.dumps(parameters, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, Telegram answers with a clear error
        return json.dumps(parameters, separators=(",", ":")).encode("ascii")


def _total(*timeouts: float | None) -> float | None:
    return None if any(t is None for t in timeouts) else sum(timeouts)  # type: ignore[arg-type]


def _without_url(message: str, url: str) -> str:
    """The message of an aiohttp error with the request URL (``…/bot<token>/method``) taken out."""
    return _TOKEN_PATH.sub("/bot<token>", message.replace(url, "<Bot API URL>"))

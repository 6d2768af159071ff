"""A fake Telegram Bot API server for end-to-end tests.

The fake is a real HTTP server (Starlette served by uvicorn on 127.0.0.1, random free port) that
answers ``POST /bot{token}/{method}`` the way api.telegram.org does, including its validation
(HTML/MarkdownV2 parsing, the 4096 UTF-16 unit limit, inline keyboard and inline query limits), so a
bot run against it over real HTTP fails here where it would fail in production.

sendPhoto takes an upload (multipart), a URL or a file_id the fake issued. An upload must be a whole PNG
or JPEG (its header is read, no image library needed) of at most 10 MB, width + height at most 10000 and
sides at most 20:1; captions are parsed like texts and hold at most 1024 UTF-16 units. The Message gets
``photo`` sizes (a 320 px one and the original); ``tg.sent_photos(chat_id)`` gives the sent photos with
their uploaded bytes. editMessageText on a photo fails as on Telegram; editMessageCaption edits it.

Polling mode::

    async with FakeTelegram(token=TOKEN) as tg:
        app = (
            ApplicationBuilder().token(TOKEN)
            .base_url(f"{tg.url}/bot").base_file_url(f"{tg.url}/file/bot")
            .build()
        )
        app.add_handler(...)
        async with app:
            await app.start()
            await app.updater.start_polling(poll_interval=0, timeout=1)
            tg.message("/start", user_id=42)
            [call] = await tg.wait_for("sendMessage", predicate=lambda p: p["chat_id"] == 42)
            await app.updater.stop()
            await app.stop()
        tg.assert_no_errors()

Webhook mode: build updates with ``tg.make_message_update(...)`` (nothing is queued) and POST them to
the bot's webhook, e.g. with ``await tg.post_to_webhook(update)`` once the bot has called setWebhook.

From another thread or a benchmark: ``tg = FakeTelegram().start_in_thread()`` ... ``tg.stop()``
(or ``with FakeTelegram() as tg:``), and ``tg.wait_for_blocking(...)``. ``python -m
tests.fake_telegram --port 8081`` runs it in the foreground.

Fault injection (all recorded in ``tg.injected``, never in ``tg.errors``): ``fail_next`` (the next calls
of a method get an error), ``delay_next`` (they are held), ``set_faults`` (seeded random 5xx answers and
dropped connections, a dropped connection either before or after the method was carried out),
``enforce_flood_control`` (Telegram's per-chat and overall sending limits, answered 429 with
``retry_after``) and ``outage`` (some methods fail for a number of seconds). ``clear_faults()`` ends all
but flood control (``lift_flood_control()``).

Deliberate differences from the real Bot API: a bare ``&`` that does not start an HTML entity is
rejected (Telegram tolerates it; ``strict_html_ampersand=False`` restores that), webhook URLs may
be plain http (``require_https_webhook=True`` checks like Telegram), updates are never pushed to the
webhook by the fake itself, and messages never expire.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import inspect
import itertools
import json
import logging
import math
import random
import re
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = [
    "BOT_ID",
    "BOT_USERNAME",
    "DEFAULT_GROUP_ID",
    "DEFAULT_SUPERGROUP_ID",
    "DEFAULT_TOKEN",
    "DEFAULT_USER_ID",
    "ApiError",
    "Call",
    "EntityParseError",
    "FakeTelegram",
    "FaultMix",
    "FloodControl",
    "RejectedCall",
    "UploadedFile",
    "find_auto_entities",
    "image_size",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "utf16_len",
]

_LOG = logging.getLogger(__name__)

DEFAULT_TOKEN = "1000001:TEST-fake-telegram-token"
BOT_ID = 1000001
BOT_USERNAME = "corpus_test_bot"
BOT_FIRST_NAME = "Corpus Bot"
DEFAULT_USER_ID = 424242
DEFAULT_GROUP_ID = -4_000_000_001
DEFAULT_SUPERGROUP_ID = -1_001_234_567_890

MAX_MESSAGE_LENGTH = 4096  # UTF-16 code units, after entity parsing
MAX_CAPTION_LENGTH = 1024  # UTF-16 code units, after entity parsing
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # an uploaded photo
MAX_PHOTO_SIDES = 10_000  # width + height of a photo, in pixels
MAX_PHOTO_RATIO = 20  # the longer side of a photo over the shorter
PHOTO_THUMBNAIL_SIDE = 320  # the longer side of the smaller size a sent photo gets
URL_PHOTO_SIZE = (800, 600)  # what a photo sent by URL is taken to be (the fake downloads nothing)
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200
MAX_INLINE_RESULTS = 50
MAX_INLINE_RESULT_ID_BYTES = 64
MAX_INLINE_NEXT_OFFSET_BYTES = 64
MAX_INLINE_KEYBOARD_BUTTONS = 100
MAX_COMMANDS = 100

ALL_UPDATE_KINDS = (
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages", "message_reaction",
    "message_reaction_count", "inline_query", "chosen_inline_result", "callback_query", "shipping_query",
    "pre_checkout_query", "purchased_paid_media", "poll", "poll_answer", "my_chat_member", "chat_member",
    "chat_join_request", "chat_boost", "removed_chat_boost",
)  # fmt: skip
# Without allowed_updates (or with an empty list) Telegram sends everything but these.
_NOT_SENT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

_CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})  # fmt: skip

_ENTITY_TYPES = frozenset({
    "mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number", "bold", "italic",
    "underline", "strikethrough", "spoiler", "blockquote", "expandable_blockquote", "code", "pre",
    "text_link", "text_mention", "custom_emoji",
})  # fmt: skip

_BUTTON_ACTIONS = (
    "url", "callback_data", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text", "callback_game",
    "pay",
)  # fmt: skip

# Fields an inline query result cannot do without ("<type>_file_id" makes the url ones optional).
_INLINE_RESULT_REQUIRED: dict[str, tuple[str, ...]] = {
    "article": ("title", "input_message_content"),
    "photo": ("photo_url", "thumbnail_url"),
    "gif": ("gif_url", "thumbnail_url"),
    "mpeg4_gif": ("mpeg4_url", "thumbnail_url"),
    "video": ("video_url", "mime_type", "thumbnail_url", "title"),
    "audio": ("audio_url", "title"),
    "voice": ("voice_url", "title"),
    "document": ("title", "document_url", "mime_type"),
    "location": ("latitude", "longitude", "title"),
    "venue": ("latitude", "longitude", "title", "address"),
    "contact": ("phone_number", "first_name"),
    "game": ("game_short_name",),
    "sticker": ("sticker_file_id",),
}

# Parameters that are strings even when they look like JSON ("123", "true").
_STRING_PARAMS = frozenset({
    "text", "caption", "query", "parse_mode", "url", "secret_token", "callback_query_id", "inline_query_id",
    "next_offset", "switch_pm_text", "switch_pm_parameter", "action", "language_code", "description",
    "short_description", "name", "inline_message_id", "ip_address", "business_connection_id",
    "message_effect_id", "title", "emoji", "sticker", "photo", "document", "video", "audio", "voice",
    "animation", "file_id", "game_short_name", "question", "address",
})  # fmt: skip
# Parameters that arrive as JSON-serialised strings in form bodies.
_JSON_PARAMS = frozenset({
    "reply_markup", "results", "commands", "allowed_updates", "entities", "caption_entities",
    "reply_parameters", "link_preview_options", "scope", "button", "media", "menu_button", "rights",
    "reaction", "options",
})  # fmt: skip

_WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the "
    "webhook first"
)
_POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
_QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

# Methods that random faults and outages leave alone unless told otherwise: what a bot needs to start
# and to receive updates (set_faults / FaultMix.exempt changes the set).
FAULT_EXEMPT_METHODS = frozenset({"getUpdates", "getMe", "setWebhook", "deleteWebhook", "getWebhookInfo"})
# Methods that send or change a message in a chat: what Telegram's flood control counts.
FLOOD_METHODS = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "editMessageText", "editMessageCaption",
    "editMessageReplyMarkup",
})  # fmt: skip
_DROP_MODES = ("before", "after")
_DROPPED = "connection dropped"  # the start of the description of every injected drop
_MEDIA_KINDS = ("photo", "video", "animation", "audio", "document", "voice")  # messages with a caption

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------------
# Records and errors
# --------------------------------------------------------------------------------------------------


class Call(NamedTuple):
    """One request the fake received: the canonical method name and the decoded parameters."""

    method: str
    params: dict[str, Any]


class RejectedCall(NamedTuple):
    """A request the fake answered with an error, and the error description it sent."""

    method: str
    params: dict[str, Any]
    description: str


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request (it stands in the params dict for the uploaded file)."""

    filename: str
    content_type: str
    data: bytes

    def __repr__(self) -> str:  # not the bytes: calls and error reports hold whole uploads
        return f"UploadedFile({self.filename!r}, {self.content_type!r}, {len(self.data):,} bytes)"


@dataclass(frozen=True)
class FaultMix:
    """Seeded random faults for :meth:`FakeTelegram.set_faults`.

    Every call of a method not in ``exempt`` draws one number from ``random.Random(seed)``: with
    probability ``server_error`` it is answered ``status`` (502 "Bad Gateway" by default) and not carried
    out; with probability ``drop`` its TCP connection is closed with no HTTP response at all. A drop in
    ``drop_mode="before"`` happens before the method is carried out (nothing is sent, nothing recorded as
    sent); in ``"after"`` mode the method is carried out (the message is sent and recorded) and then the
    connection is dropped, so the client cannot know that it worked. The same seed and the same sequence
    of calls give the same faults.
    """

    server_error: float = 0.0  # share of calls answered with ``status``
    drop: float = 0.0  # share of calls whose connection is dropped
    drop_mode: str = "before"  # "before" or "after" the method is carried out
    status: int = 502
    seed: int = 0
    exempt: frozenset[str] = FAULT_EXEMPT_METHODS  # method names (any case) never faulted

    def __post_init__(self) -> None:
        if not (0 <= self.server_error <= 1 and 0 <= self.drop <= 1 and self.server_error + self.drop <= 1):
            raise ValueError("server_error and drop are shares between 0 and 1 with a sum of at most 1")
        if self.drop_mode not in _DROP_MODES:
            raise ValueError(f"drop_mode must be one of {', '.join(_DROP_MODES)}, got {self.drop_mode!r}")
        if not 500 <= self.status <= 599:
            raise ValueError(f"status must be a 5xx code, got {self.status}")
        object.__setattr__(self, "exempt", frozenset(self.exempt))


@dataclass(frozen=True)
class FloodControl:
    """Telegram's sending limits, as :meth:`FakeTelegram.enforce_flood_control` enforces them.

    A call of one of ``methods`` to a private chat (positive chat_id) sooner than ``1 / private_per_s``
    seconds after the previous one, to a group or channel (negative or @username chat_id) when
    ``group_per_min`` calls went to it in the last minute, or when ``overall_per_s`` calls (any chat,
    inline edits included) went out in the last second, is answered 429 "Too Many Requests: retry after
    N" with ``parameters.retry_after = N``: the whole seconds (at least 1) until the call would be
    allowed. A refused call is not carried out and does not count. ``leeway`` (seconds) shortens each
    window a little, for the jitter between a client's clock and the moment its request arrives. A limit
    of 0 is no limit.
    """

    private_per_s: float = 1.0
    group_per_min: float = 20.0
    overall_per_s: float = 30.0
    methods: frozenset[str] = FLOOD_METHODS  # method names (any case) that count
    leeway: float = 0.05

    def __post_init__(self) -> None:
        if min(self.private_per_s, self.group_per_min, self.overall_per_s, self.leeway) < 0:
            raise ValueError("flood control limits and leeway cannot be negative")
        object.__setattr__(self, "methods", frozenset(self.methods))


class _Window:
    """Sliding-window counter: at most ``limit`` events in any ``seconds``."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit, self.seconds = limit, seconds
        self.times: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more event is allowed (0: now)."""
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        if len(self.times) < self.limit:
            return 0.0
        return self.times[len(self.times) - self.limit] + self.seconds - now


class _ConnectionDropped(Exception):
    """Raised in uvicorn after the response headers, so that it closes the connection (_DropResponse)."""


class _QuietDrops(logging.Filter):
    """Keeps uvicorn's "Exception in ASGI application" for deliberately dropped connections out of logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _ConnectionDropped))


class _DropResponse(Response):
    """Response headers announcing a body that never comes, then an exception: uvicorn closes the socket.

    Only used when the connection cannot be closed directly (see FakeTelegram._drop_connection).
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"1024")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise _ConnectionDropped


class ApiError(Exception):
    """An error answer of the Bot API: ``{"ok": false, "error_code": status, "description": ...}``.

    Custom method handlers (see :meth:`FakeTelegram.register_method`) raise it to reject a request.
    """

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


class EntityParseError(ValueError):
    """Text Telegram cannot parse with the requested parse_mode (the part after "can't parse entities: ")."""


class _Abandoned(Exception):
    """The client went away while its long poll was waiting."""


@dataclass
class _Described:
    result: Any
    description: str


@dataclass
class _Method:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    wants_request: bool


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


# --------------------------------------------------------------------------------------------------
# Text: UTF-16 lengths, entity parsing (HTML, MarkdownV2, Markdown), auto-detected entities
# --------------------------------------------------------------------------------------------------

_SPACE = " \t\r\n\v"  # tdlib's is_space(); the end of the text also ends a token
_TRIM = " \t\r\n\v\f"
_HTML_TAGS = frozenset({
    "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji", "span",
    "pre", "code", "blockquote",
})  # fmt: skip
_HTML_SIMPLE = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "span": "spoiler", "blockquote": "blockquote",
}  # fmt: skip
_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MDV2_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "code": "Code", "pre": "Pre", "text_link": "TextUrl", "custom_emoji": "CustomEmoji",
}  # fmt: skip
_TG_USER_LINK = re.compile(r"tg://user\?id=(\d{1,15})", re.IGNORECASE)
_LINK_SCHEMES = frozenset({"http", "https", "tg", "ton", "tonsite"})


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram's lengths and entity offsets."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _u16(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8", "surrogatepass"))


def _check_link(url: str) -> str | None:
    """Telegram's link check: the normalised URL, or None if it is not a link Telegram accepts."""
    url = url.strip()
    if not url or any(c in _SPACE for c in url):
        return None
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if match:
        scheme = match.group(1).lower()
        if scheme not in _LINK_SCHEMES:
            return None
    else:
        scheme = "http"
        url = f"http://{url}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if scheme in ("http", "https"):
        host = parts.hostname or ""
        if not re.fullmatch(r"[\w.-]+|[0-9a-fA-F:]+", host) or host.startswith(".") or ".." in host:
            return None
        if not parts.path:
            url = parts._replace(path="/").geturl()
    elif not parts.netloc and not parts.path:
        return None
    return url


def _link_entity(url: str, offset: int, length: int) -> dict[str, Any] | None:
    mention = _TG_USER_LINK.fullmatch(url.strip())
    if mention:
        user = {"id": int(mention.group(1)), "is_bot": False, "first_name": ""}
        return {"offset": offset, "length": length, "type": "text_mention", "user": user}
    normalised = _check_link(url)
    if normalised is None:
        return None  # Telegram drops links it cannot use without an error
    return {"offset": offset, "length": length, "type": "text_link", "url": normalised}


def _decode_html_entity(text: str, pos: int) -> tuple[str, int] | None:
    """Decode ``&lt;``-style references like tdlib: (character, position after it) or None."""
    n = len(text)
    end = pos + 1
    if end < n and text[end] == "#":
        end += 1
        if end < n and text[end] == "x":
            end += 1
            start = end
            while end < n and text[end] in "0123456789abcdefABCDEF":
                end += 1
            code = int(text[start:end], 16) if end > start else 0
        else:
            start = end
            while end < n and text[end] in "0123456789":
                end += 1
            code = int(text[start:end]) if end > start else 0
        if code == 0 or code >= 0x10FFFF or end - pos >= 10 or 0xD800 <= code <= 0xDFFF:
            return None
        char = chr(code)
    else:
        start = end
        while end < n and text[end].isascii() and text[end].isalpha():
            end += 1
        char = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}.get(text[start:end], "")
        if not char:
            return None
    if end < n and text[end] == ";":
        end += 1
    return char, end


@dataclass
class _Open:
    tag: str
    argument: str
    offset: int  # UTF-16 offset of the content
    out_pos: int  # index in the output list where the content starts
    begin: int = 0  # index in the source text (for error messages)


def _finish_entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop entities nested in code/pre (Telegram does) and sort by offset, longest first."""
    blocks = [e for e in entities if e["type"] in ("code", "pre")]
    kept = []
    for entity in entities:
        end = entity["offset"] + entity["length"]
        inside = any(
            b is not entity and b["offset"] <= entity["offset"] and end <= b["offset"] + b["length"]
            for b in blocks
        )
        if not inside:
            kept.append(entity)
    for entity in kept:
        entity.pop("_language", None)
    return sorted(kept, key=lambda e: (e["offset"], -e["length"]))


def parse_html(text: str, *, strict_ampersand: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram's HTML subset like tdlib does: (plain text, entities with UTF-16 offsets).

    Raises EntityParseError for unsupported tags, unbalanced or mis-nested tags, an unescaped ``<``
    and, when ``strict_ampersand`` is set, a bare ``&`` that does not start a known entity.
    """
    out: list[str] = []
    offset = 0
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            decoded = _decode_html_entity(text, i)
            if decoded is not None:
                char, i = decoded
                out.append(char)
                offset += _u16(char)
                continue
            if strict_ampersand:
                raise EntityParseError(
                    f'Unescaped "&" at byte offset {_byte_offset(text, i)}: write it as &amp; '
                    "(the fake Telegram is stricter than the real one here)"
                )
        if c != "<":
            out.append(c)
            offset += _u16(c)
            i += 1
            continue
        begin = i
        i += 1
        if i >= n or text[i] != "/":
            i = _html_start_tag(text, begin, i, stack, offset, len(out))
            continue
        # An end tag.
        if not stack:
            raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
        i += 1
        j = i
        while j < n and text[j] not in _SPACE and text[j] != ">":
            j += 1
        end_name = text[i:j]
        while j < n and text[j] in _SPACE:
            j += 1
        if j >= n or text[j] != ">":
            raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
        top = stack.pop()
        if end_name and end_name.lower() != top.tag:
            raise EntityParseError(
                f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, "
                f'expected "</{top.tag}>", found "</{end_name}>"'
            )
        if offset > top.offset:
            _html_entity(top, offset, out, entities)
        i = j + 1
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    return "".join(out), _finish_entities(entities)


def _html_start_tag(text: str, begin: int, i: int, stack: list[_Open], offset: int, out_pos: int) -> int:
    """Parse the start tag at ``text[begin]`` (``i`` is just after "<"); push it; return the next index."""
    n = len(text)

    def unclosed() -> EntityParseError:
        return EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")

    j = i
    while j < n and text[j] not in _SPACE and text[j] != ">":
        j += 1
    if j >= n:
        raise unclosed()
    tag = text[i:j].lower()
    if tag not in _HTML_TAGS:
        raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, begin)}')
    i = j
    argument = ""
    while True:
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            raise unclosed()
        if text[i] == ">":
            break
        name_begin = i
        while i < n and text[i] not in _SPACE and text[i] not in "=>":
            i += 1
        name = text[name_begin:i].lower()
        if not name:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(text, begin)}'
            )
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            raise unclosed()
        if text[i] != "=":
            if tag == "blockquote" and name == "expandable":
                argument = "expandable"
                continue
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {_byte_offset(text, begin)}"
            )
        i += 1
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            raise unclosed()
        if text[i] not in "'\"":
            token_begin = i
            while i < n and ((text[i].isascii() and text[i].isalnum()) or text[i] in ".-"):
                i += 1
            value = text[token_begin:i].lower()
            if i >= n or (text[i] not in _SPACE and text[i] != ">"):
                raise EntityParseError(
                    f"Unexpected end of name token at byte offset {_byte_offset(text, token_begin)}"
                )
        else:
            quote = text[i]
            i += 1
            chars: list[str] = []
            while i < n and text[i] != quote:
                if text[i] == "&":
                    decoded = _decode_html_entity(text, i)
                    if decoded is not None:
                        chars.append(decoded[0])
                        i = decoded[1]
                        continue
                chars.append(text[i])
                i += 1
            if i >= n:
                raise unclosed()
            i += 1
            value = "".join(chars)
        if tag == "a" and name == "href":
            argument = value
        elif tag == "code" and name == "class" and value.startswith("language-"):
            argument = value[len("language-") :]
        elif tag == "span" and name == "class" and value.startswith("tg-"):
            argument = value[len("tg-") :]
        elif tag == "tg-emoji" and name == "emoji-id":
            argument = value
        elif tag == "blockquote" and name == "expandable":
            argument = "expandable"
    if tag == "span" and argument != "spoiler":
        raise EntityParseError(
            f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, begin)}'
        )
    stack.append(_Open(tag, argument, offset, out_pos, begin))
    return i + 1


def _html_entity(top: _Open, offset: int, out: list[str], entities: list[dict[str, Any]]) -> None:
    start, length = top.offset, offset - top.offset
    tag = top.tag
    last = entities[-1] if entities else None
    same_span = last is not None and last["offset"] == start and last["length"] == length
    if tag == "blockquote":
        kind = "expandable_blockquote" if top.argument else "blockquote"
        entities.append({"offset": start, "length": length, "type": kind})
    elif tag in _HTML_SIMPLE:
        entities.append({"offset": start, "length": length, "type": _HTML_SIMPLE[tag]})
    elif tag == "a":
        url = top.argument or "".join(out[top.out_pos :])
        entity = _link_entity(url, start, length)
        if entity is not None:
            entities.append(entity)
    elif tag == "pre":
        pre: dict[str, Any] = {"offset": start, "length": length, "type": "pre"}
        if same_span and last is not None and last["type"] == "code":
            entities.pop()
            if last.get("_language"):
                pre["language"] = last["_language"]
        entities.append(pre)
    elif tag == "code":
        if same_span and last is not None and last["type"] == "pre":
            if top.argument:
                last["language"] = top.argument
        else:
            code: dict[str, Any] = {"offset": start, "length": length, "type": "code"}
            if top.argument:
                code["_language"] = top.argument
            entities.append(code)
    elif tag == "tg-emoji":
        if not top.argument.isdigit():
            raise EntityParseError("Invalid custom emoji identifier specified")
        entities.append(
            {"offset": start, "length": length, "type": "custom_emoji", "custom_emoji_id": top.argument}
        )


def parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram's MarkdownV2 like tdlib does: (plain text, entities with UTF-16 offsets)."""
    out: list[str] = []
    offset = 0
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    quote: list[Any] | None = None  # [start offset, expandable]
    n = len(text)
    i = 0

    def at(k: int) -> str:
        return text[k] if 0 <= k < n else ""

    def close_quote(end: int) -> None:
        nonlocal quote
        assert quote is not None
        start, expandable = quote
        quote = None
        if end > start:
            kind = "expandable_blockquote" if expandable else "blockquote"
            entities.append({"offset": start, "length": end - start, "type": kind})

    def reserved_error(char: str) -> EntityParseError:
        return EntityParseError(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")

    while i < n:
        in_code = bool(stack) and stack[-1].tag in ("code", "pre")
        if (i == 0 or text[i - 1] == "\n") and not in_code:
            if text.startswith("**>", i):
                if quote is None:
                    quote = [offset, True]
                i += 3
                continue
            if text[i] == ">":
                if quote is None:
                    quote = [offset, False]
                i += 1
                continue
            if quote is not None:
                close_quote(offset - 1)  # the newline before this line is not quoted
        c = text[i]
        if c == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            out.append(text[i + 1])
            offset += 1
            i += 2
            continue
        if c not in ("`" if in_code else _MDV2_RESERVED):
            out.append(c)
            offset += _u16(c)
            i += 1
            continue
        top = stack[-1] if stack else None
        if (
            quote is not None
            and quote[1]
            and c == "|"
            and at(i + 1) == "|"
            and at(i + 2) in ("", "\n")
            and not (top is not None and top.tag == "spoiler")
        ):
            close_quote(offset)  # "||" at the end of a line closes an expandable blockquote
            i += 2
            continue
        is_end = top is not None and (
            (top.tag == "bold" and c == "*")
            or (top.tag == "italic" and c == "_" and at(i + 1) != "_")
            or (top.tag == "underline" and c == "_" and at(i + 1) == "_")
            or (top.tag == "strikethrough" and c == "~")
            or (top.tag == "spoiler" and c == "|" and at(i + 1) == "|")
            or (top.tag == "code" and c == "`")
            or (top.tag == "pre" and text.startswith("```", i))
            or (top.tag in ("text_link", "custom_emoji") and c == "]")
        )
        if not is_end:
            i = _mdv2_open(text, i, stack, offset, len(out), reserved_error)
            continue
        assert top is not None
        stack.pop()
        entity: dict[str, Any] | None = {"offset": top.offset, "length": offset - top.offset, "type": top.tag}
        if top.tag in ("underline", "spoiler"):
            i += 2
        elif top.tag == "pre":
            i += 3
            if top.argument and entity is not None:
                entity["language"] = top.argument
        elif top.tag in ("text_link", "custom_emoji"):
            if at(i + 1) != "(":
                if top.tag == "custom_emoji":
                    raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
                url = "".join(out[top.out_pos :])
                i += 1
            else:
                i += 2
                url_begin = i
                chars: list[str] = []
                while i < n and text[i] != ")":
                    if text[i] == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
                        chars.append(text[i + 1])
                        i += 2
                        continue
                    chars.append(text[i])
                    i += 1
                if i >= n:
                    raise EntityParseError(
                        f"Can't find end of a URL at byte offset {_byte_offset(text, url_begin)}"
                    )
                i += 1
                url = "".join(chars)
            if top.tag == "custom_emoji":
                match = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
                if match is None:
                    raise EntityParseError("Custom emoji URL must have an emoji identifier")
                entity["custom_emoji_id"] = match.group(1)
            else:
                entity = _link_entity(url, top.offset, offset - top.offset)
        else:
            i += 1
        if entity is not None and entity["length"] > 0:
            entities.append(entity)
    if stack:
        top = stack[-1]
        raise EntityParseError(
            f"Can't find end of {_MDV2_NAMES[top.tag]} entity at byte offset {_byte_offset(text, top.begin)}"
        )
    if quote is not None:
        close_quote(offset)
    return "".join(out), _finish_entities(entities)


def _mdv2_open(
    text: str, i: int, stack: list[_Open], offset: int, out_pos: int, error: Callable[[str], Exception]
) -> int:
    """Open the MarkdownV2 entity starting at ``text[i]``; return the index after its marker."""
    n = len(text)
    c = text[i]
    begin = i
    nxt = text[i + 1] if i + 1 < n else ""
    argument = ""
    if c == "_":
        tag, i = ("underline", i + 2) if nxt == "_" else ("italic", i + 1)
    elif c == "*":
        tag, i = "bold", i + 1
    elif c == "~":
        tag, i = "strikethrough", i + 1
    elif c == "|":
        if nxt != "|":
            raise error(c)
        tag, i = "spoiler", i + 2
    elif c == "[":
        tag, i = "text_link", i + 1
    elif c == "!" and nxt == "[":
        tag, i = "custom_emoji", i + 2
    elif c == "`":
        if text.startswith("```", i):
            tag, i = "pre", i + 3
            j = i
            while j < n and text[j] not in _SPACE and text[j] != "`":
                j += 1
            if j != i and j < n and text[j] != "`":
                argument, i = text[i:j], j
            i = _skip_one_newline(text, i)
        else:
            tag, i = "code", i + 1
    else:
        raise error(c)
    stack.append(_Open(tag, argument, offset, out_pos, begin))
    return i


def _skip_one_newline(text: str, i: int) -> int:
    n = len(text)
    if i < n and text[i] in "\r\n":
        if i + 1 < n and text[i + 1] in "\r\n" and text[i] != text[i + 1]:
            return i + 2
        return i + 1
    return i


def parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram's legacy Markdown (``parse_mode="Markdown"``) like tdlib does."""
    out: list[str] = []
    offset = 0
    entities: list[dict[str, Any]] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            offset += 1
            i += 2
            continue
        if c not in "_*`[":
            out.append(c)
            offset += _u16(c)
            i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        is_pre = False
        language = ""
        i += 1
        if c == "`" and text.startswith("``", i):
            i += 2
            is_pre = True
            j = i
            while j < n and text[j] not in _SPACE and text[j] != "`":
                j += 1
            if j != i and j < n and text[j] != "`":
                language, i = text[i:j], j
            i = _skip_one_newline(text, i)
        start, start_pos = offset, len(out)
        while i < n and (text[i] != end_char or (is_pre and not text.startswith("``", i + 1))):
            out.append(text[i])
            offset += _u16(text[i])
            i += 1
        if i >= n:
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}"
            )
        if offset > start:
            length = offset - start
            if c in "_*":
                entities.append({"offset": start, "length": length, "type": "italic" if c == "_" else "bold"})
            elif c == "`":
                entity: dict[str, Any] = {
                    "offset": start,
                    "length": length,
                    "type": "pre" if is_pre else "code",
                }
                if is_pre and language:
                    entity["language"] = language
                entities.append(entity)
            else:
                if i + 1 < n and text[i + 1] == "(":
                    i += 2
                    url_chars: list[str] = []
                    while i < n and text[i] != ")":
                        url_chars.append(text[i])
                        i += 1
                    url = "".join(url_chars)
                else:
                    url = "".join(out[start_pos:])
                link = _link_entity(url, start, length)
                if link is not None:
                    entities.append(link)
        if is_pre:
            i += 2
        i += 1
    return "".join(out), _finish_entities(entities)


_COMMON_TLDS = (
    "com|org|net|io|dev|app|ru|de|uk|me|info|edu|gov|co|ai|xyz|eu|fr|it|es|nl|us|ca|jp|cn|in|br|au|tv"
)
_AUTO_ENTITY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "email",
        re.compile(
            r"(?<![\w.+-])[A-Za-z0-9][\w.+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
            r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b"
        ),
    ),
    (
        "url",
        re.compile(
            r"(?<![\w@/.])(?:(?:https?|tg|ton)://[^\s<>\"']+"
            rf"|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+(?:{_COMMON_TLDS})\b(?:/[^\s<>\"']*)?)",
            re.IGNORECASE,
        ),
    ),
    ("bot_command", re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z0-9_]{4,32}(?![\w@])")),
    ("hashtag", re.compile(r"(?<![\w#])#(?![0-9]+\b)\w{1,256}")),
)
_OPAQUE_TYPES = frozenset(
    {"code", "pre", "text_link", "text_mention", "url", "email", "mention", "bot_command"}
)


def find_auto_entities(text: str, existing: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Entities Telegram detects by itself: bot_command, mention, hashtag, url, email (UTF-16 offsets).

    Spans overlapping an ``existing`` code/pre/link/auto entity are skipped.
    """
    taken: list[tuple[int, int]] = [
        (e["offset"], e["offset"] + e["length"]) for e in existing or [] if e["type"] in _OPAQUE_TYPES
    ]
    found: list[dict[str, Any]] = []
    for kind, pattern in _AUTO_ENTITY_PATTERNS:
        for match in pattern.finditer(text):
            value = match.group(0)
            if kind == "url":
                value = value.rstrip(".,;:!?)'\"")
                if not value:
                    continue
            start = utf16_len(text[: match.start()])
            end = start + utf16_len(value)
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            found.append({"offset": start, "length": end - start, "type": kind})
    return found


def _trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Strip leading/trailing whitespace like Telegram, moving and clipping the entities."""
    left_stripped = text.lstrip(_TRIM)
    left = utf16_len(text[: len(text) - len(left_stripped)])
    result = left_stripped.rstrip(_TRIM)
    size = utf16_len(result)
    kept = []
    for entity in entities:
        start = max(0, entity["offset"] - left)
        end = min(size, entity["offset"] + entity["length"] - left)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return result, kept


# --------------------------------------------------------------------------------------------------
# Images: what an uploaded photo is (PNG and JPEG headers, read without an image library)
# --------------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Bit depths each PNG colour type allows (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA).
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# JPEG frames a decoder such as Telegram's reads: baseline, extended sequential and progressive (SOF0-2).
_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2})
_JPEG_OTHER_FRAMES = frozenset({0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or JPEG image read from its structure, or None if ``data`` is neither.

    A PNG must be whole: the signature, an IHDR chunk first (with a colour type and bit depth that go
    together), at least one IDAT chunk and IEND, every chunk's CRC right. A JPEG must start with SOI and
    have a baseline, extended or progressive frame header (SOF0, SOF1, SOF2) before its scan data.
    """
    if data.startswith(_PNG_SIGNATURE):
        return _png_size(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    position, size, seen_idat = len(_PNG_SIGNATURE), None, False
    while position + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, position)
        kind = data[position + 4 : position + 8]
        end = position + 8 + length
        if length > 0x7FFFFFFF or end + 4 > len(data):
            return None
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(data[position + 4 : end]) != crc:
            return None
        body = data[position + 8 : end]
        if size is None:
            if kind != b"IHDR" or length != 13:
                return None
            width, height, depth, colour = struct.unpack_from(">IIBB", body)
            if not width or not height or depth not in _PNG_DEPTHS.get(colour, ()):
                return None
            size = (width, height)
        elif kind == b"IDAT":
            seen_idat = True
        elif kind == b"IEND":
            return size if seen_idat else None
        position = end + 4
    return None  # cut short: no IEND


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position, n = 2, len(data)
    while position < n:
        if data[position] != 0xFF:
            return None
        while position < n and data[position] == 0xFF:  # fill bytes
            position += 1
        if position >= n:
            return None
        marker = data[position]
        position += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            continue
        if marker in (0xD8, 0xD9, 0xDA) or marker in _JPEG_OTHER_FRAMES:
            return None  # a second SOI, the end or the scan data before any (readable) frame header
        if position + 2 > n:
            return None
        (length,) = struct.unpack_from(">H", data, position)
        if length < 2 or position + length > n:
            return None
        if marker in _JPEG_FRAMES:
            if length < 8:
                return None
            height, width = struct.unpack_from(">HH", data, position + 3)
            return (width, height) if width and height else None
        position += length
    return None


# --------------------------------------------------------------------------------------------------
# Request decoding
# --------------------------------------------------------------------------------------------------


def _decode_value(name: str, value: Any, *, from_form: bool) -> Any:
    if not isinstance(value, str):
        return value
    if name in _JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            raise _bad(f"can't parse {name} JSON object") from None
    if not from_form or name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise _bad("can't parse multipart/form-data request")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            fields[name] = UploadedFile(filename, part.get_content_type(), data)
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields


async def _read_params(request: Request) -> dict[str, Any]:
    form: dict[str, Any] = dict(request.query_params.multi_items())
    typed: dict[str, Any] = {}
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if body:
        if media_type == "application/json":
            try:
                data = json.loads(body)
            except ValueError:
                raise _bad("can't parse JSON encoded request") from None
            if not isinstance(data, dict):
                raise _bad("can't parse JSON encoded request")
            typed = data
        elif media_type == "multipart/form-data":
            form.update(_parse_multipart(content_type, body))
        else:
            form.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    params = {k: _decode_value(k, v, from_form=True) for k, v in form.items()}
    params.update({k: _decode_value(k, v, from_form=False) for k, v in typed.items()})
    return params


def _json_response(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status_code=status, media_type="application/json")


def _update_kind(update: dict[str, Any]) -> str:
    return next((k for k in update if k != "update_id"), "")


def _int_param(params: dict[str, Any], name: str, missing: str) -> int:
    value = params.get(name)
    if value is None or value == "":
        raise _bad(missing)
    if isinstance(value, bool):
        raise _bad(f"invalid {name} specified")
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise _bad(f"invalid {name} specified")
    return value


def _without_reply(message: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(message)
    result.pop("reply_to_message", None)
    return result


class _UvicornServer(uvicorn.Server):
    """uvicorn without signal handling (it runs inside someone else's loop) and a snappier exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        while not self.should_exit:
            await asyncio.sleep(0.02)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own shutdown polls every 0.1 s; tests start and stop a server each.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 3)
        while (self.server_state.connections or self.server_state.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for task in list(self.server_state.tasks):
            task.cancel()
        for server in self.servers:
            await server.wait_closed()


# --------------------------------------------------------------------------------------------------
# The fake server
# --------------------------------------------------------------------------------------------------


class FakeTelegram:
    """A fake Bot API server; see the module docstring for the usage.

    Recorded (read them freely; they are appended to while the server runs):
        calls: every request as Call(method, params), rejected ones included.
        errors: requests the fake rejected as Telegram would (a bot bug), RejectedCall(method, params,
            description). Failures injected with fail_next, set_faults, outage and flood control are in
            ``injected`` instead (a dropped connection's description starts with "connection dropped").
        callback_answers / inline_answers / chat_actions / deleted_messages: params of the successful
            answerCallbackQuery / answerInlineQuery / sendChatAction / deleteMessage calls.
        flood_refusals: how many calls flood control refused, by the limit that refused them
            ("private", "group" or "overall").
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        strict_chats: bool = True,
        strict_html_ampersand: bool = True,
        require_https_webhook: bool = False,
        flood_control: bool | FloodControl = False,
    ):
        """``flood_control``: True (Telegram's limits) or a FloodControl enforces them from the start."""
        self.token = token
        self.host = host
        self.port = port
        self.strict_chats = strict_chats
        self.strict_html_ampersand = strict_html_ampersand
        self.require_https_webhook = require_https_webhook
        self.url: str | None = None

        self.bot_user: dict[str, Any] = {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

        self.calls: list[Call] = []
        self.errors: list[RejectedCall] = []
        self.injected: list[RejectedCall] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.inline_answers: list[dict[str, Any]] = []
        self.chat_actions: list[dict[str, Any]] = []
        self.deleted_messages: list[dict[str, Any]] = []
        self.webhook_deliveries: list[tuple[dict[str, Any], int]] = []
        self.flood_refusals: dict[str, int] = {}  # 429s of flood control by the limit that refused
        self.confirmed_offset = 0  # the highest getUpdates offset seen

        self._lock = threading.RLock()
        self._waiters: list[Callable[[], None]] = []
        self._ids = itertools.count(1)
        self._update_seq = 0
        self._updates: list[dict[str, Any]] = []
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._closing = False
        self._users: dict[int, dict[str, Any]] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._blocked: set[int] = set()
        self._message_seq: dict[int, int] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._sent: list[dict[str, Any]] = []
        self._photos: list[dict[str, Any]] = []  # {"message", "data", "filename"} of each sent photo
        self._files: dict[str, dict[str, Any]] = {}  # photo file_id -> {"sizes", "data", "filename"}
        self._edited: list[dict[str, Any]] = []
        self._callback_queries: dict[str, dict[str, Any]] = {}
        self._inline_queries: dict[str, dict[str, Any]] = {}
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._bot_texts: dict[tuple[str, str], str] = {}
        self._webhook: dict[str, Any] = {"url": ""}
        self._failures: dict[str, list[ApiError]] = {}
        self._delays: dict[str, list[float]] = {}
        self._fault_mix: FaultMix | None = None
        self._fault_rng = random.Random(0)
        self._outages: dict[str, tuple[float, str]] = {}  # lower-case method -> (monotonic end, kind)
        self._flood: FloodControl | None = None
        self._flood_windows: dict[Any, _Window] = {}
        self._methods: dict[str, _Method] = {}

        self._server: _UvicornServer | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

        builtin: dict[str, Callable[..., Any]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "answerInlineQuery": self._answer_inline_query,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setMyDescription": self._bot_text_setter("description", 512),
            "getMyDescription": self._bot_text_getter("description"),
            "setMyShortDescription": self._bot_text_setter("short_description", 120),
            "getMyShortDescription": self._bot_text_getter("short_description"),
            "sendChatAction": self._send_chat_action,
            "close": lambda params: True,
            "logOut": lambda params: True,
        }
        for name, fn in builtin.items():
            self.register_method(name, fn)
        self._methods["getupdates"].wants_request = True
        if flood_control:
            self.enforce_flood_control(flood_control if isinstance(flood_control, FloodControl) else None)

    # ---------------------------------------------------------------- lifecycle

    @property
    def api_url(self) -> str:
        """What to give ApplicationBuilder.base_url / Bot(base_url=...)."""
        return f"{self._require_url()}/bot"

    @property
    def file_url(self) -> str:
        """What to give ApplicationBuilder.base_file_url."""
        return f"{self._require_url()}/file/bot"

    def _require_url(self) -> str:
        if self.url is None:
            raise RuntimeError("the fake Telegram server is not started")
        return self.url

    async def start(self) -> FakeTelegram:
        """Start serving in the running event loop (as an asyncio task); sets ``url``."""
        if self._serve_task is not None:
            raise RuntimeError("already started")
        app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST"])])
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level="warning",
            log_config=None,
            lifespan="off",
            access_log=False,
            http="h11",
            timeout_graceful_shutdown=3,
        )
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
        # without it every response waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._closing = False
        self._loop = asyncio.get_running_loop()
        error_log = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _QuietDrops) for f in error_log.filters):
            error_log.addFilter(_QuietDrops())
        self._server = _UvicornServer(config)
        self._serve_task = asyncio.create_task(self._server.serve(sockets=[sock]), name="fake-telegram")
        deadline = time.monotonic() + 10
        while not self._server.started:
            if self._serve_task.done():
                self._serve_task.result()
                raise RuntimeError("the fake Telegram server stopped while starting")
            if time.monotonic() > deadline:
                raise RuntimeError("the fake Telegram server did not start within 10 s")
            await asyncio.sleep(0.005)
        self.url = f"http://{self.host}:{self.port}"
        return self

    async def aclose(self) -> None:
        """Stop serving: waiting long polls return [] and uvicorn shuts down."""
        if self._server is None or self._serve_task is None:
            return
        with self._lock:
            self._closing = True
        self._notify()
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._serve_task, timeout=10)
        finally:
            self._server = None
            self._serve_task = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def start_in_thread(self, timeout: float = 10.0) -> FakeTelegram:
        """Run the server in a background thread with its own event loop; returns self once it serves."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.aclose())
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-telegram", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"the fake Telegram server did not start within {timeout} s")
        if failure:
            raise RuntimeError("the fake Telegram server failed to start") from failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop a server started with start_in_thread()."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with self._lock:
            self._closing = True
        self._notify()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> FakeTelegram:
        return self.start_in_thread()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- waiting

    def _notify(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for wake in waiters:
            wake()

    @contextlib.contextmanager
    def _subscribed(self, wake: Callable[[], None]) -> Iterator[None]:
        with self._lock:
            self._waiters.append(wake)
        try:
            yield
        finally:
            with self._lock:
                self._waiters.remove(wake)

    @staticmethod
    def _async_waker(event: asyncio.Event) -> Callable[[], None]:
        loop = asyncio.get_running_loop()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the waiting loop is closed
                loop.call_soon_threadsafe(event.set)

        return wake

    async def _wait_until(
        self, check: Callable[[], _T | None], timeout: float, describe: Callable[[], str]
    ) -> _T:
        event = asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self._subscribed(self._async_waker(event)):
            while True:
                event.clear()
                with self._lock:
                    result = check()
                if result is not None:
                    return result
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise AssertionError(describe())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)

    def _wait_until_blocking(
        self, check: Callable[[], _T | None], timeout: float, describe: Callable[[], str]
    ) -> _T:
        if self._thread is None:
            with contextlib.suppress(RuntimeError):
                if asyncio.get_running_loop() is self._loop:
                    raise RuntimeError(
                        "wait_for_blocking() would block the server's own loop; use wait_for()"
                    )
        event = threading.Event()
        deadline = time.monotonic() + timeout
        with self._subscribed(event.set):
            while True:
                event.clear()
                with self._lock:
                    result = check()
                if result is not None:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(describe())
                event.wait(remaining)

    def _call_matcher(
        self, method: str, count: int, predicate: Callable[[dict[str, Any]], bool] | None, since: int
    ) -> Callable[[], list[Call] | None]:
        wanted = method.lower()

        def matches(call: Call) -> bool:
            if call.method.lower() != wanted:
                return False
            if predicate is None:
                return True
            try:
                return bool(predicate(call.params))
            except Exception:  # a predicate written for other params (KeyError...) just does not match
                return False

        def check() -> list[Call] | None:
            found = [c for c in self.calls[since:] if matches(c)]
            return found if len(found) >= count else None

        return check

    def _describe_wait(self, what: str, timeout: float, since: int) -> Callable[[], str]:
        def describe() -> str:
            with self._lock:
                calls = self.calls[since:]
                errors = list(self.errors)
                injected = list(self.injected)
            summary = [f"{c.method}({_short(c.params)})" for c in calls if c.method != "getUpdates"]
            polls = sum(1 for c in calls if c.method == "getUpdates")
            lines = [
                f"timed out after {timeout:g} s waiting for {what}",
                f"calls received ({len(calls)}, of which {polls} getUpdates): {summary or 'none'}",
            ]
            if errors:
                lines.append(f"rejected: {[(e.method, e.description) for e in errors]}")
            if injected:
                lines.append(f"injected failures: {[(e.method, e.description) for e in injected]}")
            return "\n".join(lines)

        return describe

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        *,
        since: int = 0,
    ) -> list[Call]:
        """Wait until ``count`` calls of ``method`` (whose params satisfy ``predicate``) have arrived.

        Counts calls from index ``since`` of ``calls`` (pass ``len(tg.calls)`` to wait for new ones),
        rejected ones included. Returns all matching calls; AssertionError on timeout.
        """
        what = f"{count} {method} call(s)" + (" matching the predicate" if predicate else "")
        check = self._call_matcher(method, count, predicate, since)
        return await self._wait_until(check, timeout, self._describe_wait(what, timeout, since))

    def wait_for_blocking(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        *,
        since: int = 0,
    ) -> list[Call]:
        """wait_for() for threads (the server running with start_in_thread)."""
        what = f"{count} {method} call(s)" + (" matching the predicate" if predicate else "")
        check = self._call_matcher(method, count, predicate, since)
        return self._wait_until_blocking(check, timeout, self._describe_wait(what, timeout, since))

    async def wait_for_sent(
        self, chat_id: int | None = None, count: int = 1, timeout: float = 5.0, *, since: int = 0
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` messages were successfully sent (to ``chat_id``); return them.

        ``since`` indexes the list of all sent messages (``len(tg.sent_messages())``).
        """

        def check() -> list[dict[str, Any]] | None:
            found = [m for m in self._sent[since:] if chat_id is None or m["chat"]["id"] == chat_id]
            return copy.deepcopy(found) if len(found) >= count else None

        what = f"{count} sent message(s)" + (f" to chat {chat_id}" if chat_id is not None else "")
        return await self._wait_until(check, timeout, self._describe_wait(what, timeout, 0))

    def assert_no_errors(self) -> None:
        """Raise AssertionError listing the requests the fake rejected, if any."""
        with self._lock:
            errors = list(self.errors)
        if errors:
            details = "\n".join(f"  {e.method}({_short(e.params)}): {e.description}" for e in errors)
            raise AssertionError(f"the fake Telegram rejected {len(errors)} request(s):\n{details}")

    # ---------------------------------------------------------------- failure injection

    def fail_next(
        self,
        method: str,
        times: int = 1,
        status: int = 429,
        retry_after: int | None = None,
        description: str | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` ("*" = any method) with an error.

        429 is flood control ("Too Many Requests: retry after N" with parameters.retry_after, N default
        1); 5xx a server error ("Bad Gateway"...); ``migrate_to_chat_id`` gives Telegram's
        "group chat was upgraded to a supergroup chat" (400). The call is recorded in ``calls`` and
        ``injected``, not in ``errors``.
        """
        parameters: dict[str, Any] = {}
        if migrate_to_chat_id is not None:
            if status == 429:
                status = 400
            parameters["migrate_to_chat_id"] = migrate_to_chat_id
            description = description or "Bad Request: group chat was upgraded to a supergroup chat"
        elif status == 429:
            retry_after = 1 if retry_after is None else retry_after
            parameters["retry_after"] = retry_after
            description = description or f"Too Many Requests: retry after {retry_after}"
        elif retry_after is not None:
            parameters["retry_after"] = retry_after
        description = description or _DEFAULT_DESCRIPTIONS.get(status, f"Error {status}")
        error = ApiError(status, description, parameters or None)
        with self._lock:
            self._failures.setdefault(self._canonical(method), []).extend([error] * times)

    def delay_next(self, method: str, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` calls of ``method`` ("*" = any) for ``seconds`` before answering.

        The call is still carried out afterwards, even if the client gave up (like Telegram).
        """
        with self._lock:
            self._delays.setdefault(self._canonical(method), []).extend([seconds] * times)

    def block_bot(self, user_id: int) -> None:
        """The user blocks the bot: sends to their private chat get 403 "bot was blocked by the user"."""
        with self._lock:
            self._blocked.add(user_id)

    def set_faults(self, mix: FaultMix | None = None, /, **fields: Any) -> FaultMix | None:
        """Seeded random faults on every method but ``FaultMix.exempt`` (see :class:`FaultMix`).

        ``tg.set_faults(server_error=0.15, drop=0.08, drop_mode="before", seed=3)`` or
        ``tg.set_faults(FaultMix(...))`` turns them on (fields given with a mix replace its fields), and
        the random sequence restarts from the seed; ``tg.set_faults(None)`` or ``tg.set_faults()`` turns
        them off. Returns the mix in force. Each fault is recorded in ``injected``: the status text
        ("Bad Gateway") or "connection dropped before/after METHOD was carried out".
        """
        if fields:
            mix = dataclasses.replace(mix, **fields) if mix is not None else FaultMix(**fields)
        with self._lock:
            self._fault_mix = mix
            self._fault_rng = random.Random(mix.seed if mix is not None else 0)
        return mix

    def outage(self, seconds: float, methods: Iterable[str] = ("sendMessage",), kind: str = "502") -> None:
        """For the next ``seconds``, calls of ``methods`` ("*" = any) fail; afterwards they work again.

        ``kind`` is a 5xx status ("502" Bad Gateway, "503"...) or "drop": the connection is closed with
        no response. Either way the method is not carried out. :meth:`end_outage` ends it early; a new
        outage of a method replaces its current one. Each failed call is recorded in ``injected``.
        """
        if kind != "drop" and not (kind.isdigit() and 500 <= int(kind) <= 599):
            raise ValueError(f'kind must be a 5xx status such as "502" or "drop", got {kind!r}')
        if isinstance(methods, str):
            methods = (methods,)
        until = time.monotonic() + seconds
        with self._lock:
            for method in methods:
                self._outages[self._canonical(method).lower()] = (until, kind)

    def end_outage(self, methods: Iterable[str] | None = None) -> None:
        """End the outage of ``methods`` (None: of every method) now."""
        with self._lock:
            if methods is None:
                self._outages.clear()
                return
            for method in (methods,) if isinstance(methods, str) else methods:
                self._outages.pop(self._canonical(method).lower(), None)

    def outage_remaining(self, method: str = "sendMessage") -> float:
        """Seconds left of ``method``'s outage (0 when there is none)."""
        with self._lock:
            entry = self._current_outage(self._canonical(method).lower())
        return max(0.0, entry[0] - time.monotonic()) if entry else 0.0

    def _current_outage(self, key: str) -> tuple[float, str] | None:
        """The outage in force for a lower-case method name (its own, else "*"); call holding the lock."""
        now = time.monotonic()
        for name in [name for name, (until, _) in self._outages.items() if until <= now]:
            del self._outages[name]
        return self._outages.get(key) or self._outages.get("*")

    def enforce_flood_control(
        self,
        control: FloodControl | None = None,
        /,
        *,
        private_per_s: float | None = None,
        group_per_min: float | None = None,
        overall_per_s: float | None = None,
        **fields: Any,
    ) -> FloodControl:
        """Answer sends beyond Telegram's limits with 429 "Too Many Requests: retry after N".

        Defaults: one message a second to a private chat, 20 a minute to a group, 30 a second overall,
        counted over sendMessage, sendPhoto, sendDocument, editMessageText and editMessageReplyMarkup
        (see :class:`FloodControl`). Counting starts afresh. :meth:`lift_flood_control` ends it.
        """
        given = {"private_per_s": private_per_s, "group_per_min": group_per_min,
                 "overall_per_s": overall_per_s}  # fmt: skip
        changes = {**{k: v for k, v in given.items() if v is not None}, **fields}
        control = dataclasses.replace(control or FloodControl(), **changes)
        with self._lock:
            self._flood = control
            self._flood_windows.clear()
        return control

    def lift_flood_control(self) -> None:
        """Stop enforcing the sending limits."""
        with self._lock:
            self._flood = None
            self._flood_windows.clear()

    def clear_faults(self) -> None:
        """Forget every pending fail_next / delay_next, the random faults and the outages (not flood
        control: see lift_flood_control)."""
        with self._lock:
            self._failures.clear()
            self._delays.clear()
            self._fault_mix = None
            self._outages.clear()

    def _draw_fault(self, method: str) -> ApiError | str | None:
        """The outage or random fault for this call: an ApiError to answer, "before"/"after" (a drop), or
        None."""
        key = method.lower()
        with self._lock:
            entry = self._current_outage(key)
            if entry is not None:
                kind = entry[1]
                if kind == "drop":
                    return "before"
                return ApiError(int(kind), _DEFAULT_DESCRIPTIONS.get(int(kind), f"Error {kind}"))
            mix = self._fault_mix
            if mix is None or key in {m.lower() for m in mix.exempt}:
                return None
            draw = self._fault_rng.random()
        if draw < mix.server_error:
            return ApiError(mix.status, _DEFAULT_DESCRIPTIONS.get(mix.status, f"Error {mix.status}"))
        if draw < mix.server_error + mix.drop:
            return mix.drop_mode
        return None

    def _flood_refusal(self, method: str, params: dict[str, Any]) -> ApiError | None:
        """429 if this call breaks the flood limits; otherwise the call is counted and None returned."""
        with self._lock:
            control = self._flood
            if control is None or method.lower() not in {m.lower() for m in control.methods}:
                return None
            leeway = control.leeway
            windows: list[tuple[str, Any, int, float]] = []  # (limit's name, key, calls, seconds)
            if control.overall_per_s > 0:
                windows.append(("overall", "overall", max(1, int(control.overall_per_s)), 1.0))
            chat = _flood_chat(params)
            if chat is not None and chat > 0 and control.private_per_s > 0:
                windows.append(("private", ("chat", chat), 1, 1.0 / control.private_per_s))
            elif chat is not None and chat <= 0 and control.group_per_min > 0:
                windows.append(("group", ("chat", chat), max(1, int(control.group_per_min)), 60.0))
            now = time.monotonic()
            counters: list[tuple[str, _Window]] = []
            for name, key, limit, seconds in windows:
                counter = self._flood_windows.get(key)
                if counter is None:
                    counter = self._flood_windows[key] = _Window(limit, max(0.0, seconds - leeway))
                counters.append((name, counter))
            wait, binding = max(((c.wait(now), name) for name, c in counters), default=(0.0, ""))
            if wait > 0:
                self.flood_refusals[binding] = self.flood_refusals.get(binding, 0) + 1
                retry_after = max(1, math.ceil(wait))
                return ApiError(429, f"Too Many Requests: retry after {retry_after}",
                                {"retry_after": retry_after})  # fmt: skip
            for _, counter in counters:
                counter.times.append(now)
        return None

    def _record_injected(self, method: str, params: dict[str, Any], description: str) -> None:
        with self._lock:
            self.injected.append(RejectedCall(method, params, description))
        self._notify()

    def _find_protocol(self, request: Request) -> Any:
        """uvicorn's protocol object (it owns the transport) of the connection ``request`` came on."""
        client = request.scope.get("client")
        if self._server is None or client is None:
            return None
        for connection in list(self._server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None and getattr(connection, "client", None) == tuple(client):
                return connection
        return None

    async def _drop_connection(self, request: Request) -> Response:
        """Close the request's TCP connection without sending any of the response.

        The client sees the server disconnect with no answer (aiohttp: ServerDisconnectedError, httpx:
        RemoteProtocolError). If uvicorn's connection cannot be found, headers announcing a body are sent
        and the body never comes (_DropResponse): the client sees an incomplete payload instead.
        """
        protocol = self._find_protocol(request)
        if protocol is None:
            return _DropResponse()
        protocol.transport.close()
        for _ in range(100):  # connection_lost runs soon; then uvicorn writes nothing more
            if self._server is None or protocol not in self._server.server_state.connections:
                break
            await asyncio.sleep(0)
        return Response(status_code=204)  # never written: the connection is gone

    def _take(self, table: dict[str, list[_T]], method: str) -> _T | None:
        with self._lock:
            for key in (method, "*"):
                pending = table.get(key)
                if pending:
                    return pending.pop(0)
        return None

    # ---------------------------------------------------------------- extension

    def register_method(self, name: str, handler: Callable[[dict[str, Any]], Any]) -> None:
        """Serve another Bot API method: ``handler(params)`` (sync or async) returns the result or
        raises ApiError. Sync handlers run holding the fake's lock."""
        is_async = inspect.iscoroutinefunction(handler)
        self._methods[name.lower()] = _Method(name, handler, is_async, wants_request=False)

    def _canonical(self, method: str) -> str:
        entry = self._methods.get(method.lower())
        return entry.name if entry else method

    # ---------------------------------------------------------------- inspection

    def sent_messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent successfully (as returned to it), oldest first."""
        with self._lock:
            return [copy.deepcopy(m) for m in self._sent if chat_id is None or m["chat"]["id"] == chat_id]

    def last_sent_message(self, chat_id: int | None = None) -> dict[str, Any] | None:
        sent = self.sent_messages(chat_id)
        return sent[-1] if sent else None

    def sent_photos(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Photos the bot sent successfully, oldest first (they are in sent_messages() too), each as
        ``{"message": the Message as returned to the bot, "data": the image's bytes, "filename": ...}``.

        A photo resent by file_id carries the bytes (and file name) of its first upload; one sent by URL
        has ``data`` and ``filename`` None (the fake downloads nothing)."""
        with self._lock:
            return [
                copy.deepcopy(photo)
                for photo in self._photos
                if chat_id is None or photo["message"]["chat"]["id"] == chat_id
            ]

    def edited_messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Results of successful editMessageText/editMessageCaption/editMessageReplyMarkup calls (inline
        edits included as {"inline_message_id": ..., ...params})."""
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self._edited
                if chat_id is None or m.get("chat", {}).get("id") == chat_id
            ]

    def get_message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The current state of a message (after edits), or None if unknown or deleted."""
        with self._lock:
            message = self._messages.get((chat_id, message_id))
            return copy.deepcopy(message) if message else None

    @property
    def commands(self) -> list[dict[str, str]]:
        """The commands set for the default scope and no language code."""
        return self.commands_for()

    def commands_for(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, str]]:
        with self._lock:
            return copy.deepcopy(self._commands.get((self._scope_key(scope), language_code), []))

    @property
    def webhook(self) -> dict[str, Any]:
        """The current webhook: url ("" when none), secret_token, allowed_updates, max_connections..."""
        with self._lock:
            return copy.deepcopy(self._webhook)

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Queued updates not yet confirmed by a getUpdates offset."""
        with self._lock:
            return copy.deepcopy(self._updates)

    # ---------------------------------------------------------------- update builders

    def _next_update_id(self) -> int:
        self._update_seq += 1
        return self._update_seq

    def make_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``{"update_id": <next>, kind: payload}``, not queued."""
        with self._lock:
            return {"update_id": self._next_update_id(), kind: copy.deepcopy(payload)}

    def add_user(
        self,
        user_id: int = DEFAULT_USER_ID,
        first_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
    ) -> dict[str, Any]:
        """Register (or update) a user; returns the User object."""
        with self._lock:
            user = self._users.get(user_id)
            if user is None:
                user = {"id": user_id, "is_bot": False, "first_name": first_name or f"Tester{user_id}"}
                user["username"] = username or f"tester{user_id}"
                if language_code:
                    user["language_code"] = language_code
                self._users[user_id] = user
            else:
                if first_name:
                    user["first_name"] = first_name
                if username:
                    user["username"] = username
            return copy.deepcopy(user)

    def add_chat(
        self,
        chat_id: int | None = None,
        chat_type: str = "private",
        *,
        title: str | None = None,
        username: str | None = None,
        user_id: int | None = None,
    ) -> dict[str, Any]:
        """Register a chat the bot may write to; returns the Chat object.

        A private chat's id is its user's id (``user_id`` or ``chat_id``); group ids are negative.
        """
        with self._lock:
            if chat_type == "private":
                uid = user_id if user_id is not None else chat_id if chat_id is not None else DEFAULT_USER_ID
                if chat_id is not None and chat_id != uid:
                    raise ValueError("a private chat's id is the id of its user")
                user = self.add_user(uid)
                chat: dict[str, Any] = {"id": uid, "type": "private", "first_name": user["first_name"]}
                if user.get("username"):
                    chat["username"] = user["username"]
            elif chat_type in ("group", "supergroup", "channel"):
                if chat_id is None:
                    chat_id = DEFAULT_GROUP_ID if chat_type == "group" else DEFAULT_SUPERGROUP_ID
                if chat_id >= 0:
                    raise ValueError("group, supergroup and channel ids are negative")
                existing = self._chats.get(chat_id, {})
                default_title = {"group": "Test Group", "supergroup": "Test Supergroup"}.get(
                    chat_type, "Test Channel"
                )
                chat = {
                    "id": chat_id,
                    "type": chat_type,
                    "title": title or existing.get("title") or default_title,
                }
                if username or existing.get("username"):
                    chat["username"] = username or existing["username"]
            else:
                raise ValueError(f"unknown chat type {chat_type!r}")
            self._chats[chat["id"]] = chat
            return copy.deepcopy(chat)

    def _store_message(
        self, chat: dict[str, Any], sender: dict[str, Any], content: dict[str, Any]
    ) -> dict[str, Any]:
        chat_id = chat["id"]
        self._message_seq[chat_id] = self._message_seq.get(chat_id, 0) + 1
        message = {
            "message_id": self._message_seq[chat_id],
            "from": copy.deepcopy(sender),
            "chat": copy.deepcopy(chat),
            "date": int(time.time()),
            **content,
        }
        self._messages[(chat_id, message["message_id"])] = message
        return message

    def _current(self, message: dict[str, Any]) -> dict[str, Any]:
        stored = self._messages.get((message["chat"]["id"], message["message_id"]))
        return copy.deepcopy(stored if stored is not None else message)

    def make_message_update(
        self,
        text: str | None = None,
        *,
        chat_id: int | None = None,
        user_id: int = DEFAULT_USER_ID,
        chat_type: str = "private",
        first_name: str | None = None,
        username: str | None = None,
        title: str | None = None,
        reply_to: dict[str, Any] | None = None,
        reply_to_bot_message: dict[str, Any] | None = None,
        entities: list[dict[str, Any]] | None = None,
        message_thread_id: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A "message" update from a user (not queued). Entities for /commands, @mentions, urls and
        hashtags are computed unless given; ``fields`` are merged into the Message (photo, caption...)."""
        with self._lock:
            user = self.add_user(user_id, first_name, username)
            chat = self.add_chat(chat_id, chat_type, title=title, user_id=user_id)
            content: dict[str, Any] = {}
            if message_thread_id is not None:
                content["message_thread_id"] = message_thread_id
            if text is not None:
                content["text"] = text
                found = entities if entities is not None else find_auto_entities(text)
                if found:
                    content["entities"] = copy.deepcopy(found)
            replied = reply_to or reply_to_bot_message
            if replied is not None:
                content["reply_to_message"] = _without_reply(self._current(replied))
            content.update(copy.deepcopy(fields))
            message = self._store_message(chat, user, content)
            return {"update_id": self._next_update_id(), "message": copy.deepcopy(message)}

    def make_edited_message_update(
        self, message: dict[str, Any], text: str, *, entities: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """An "edited_message" update: the user edited their ``message`` (a Message dict) to ``text``."""
        with self._lock:
            edited = self._current(message)
            edited["text"] = text
            found = entities if entities is not None else find_auto_entities(text)
            edited.pop("entities", None)
            if found:
                edited["entities"] = copy.deepcopy(found)
            edited["edit_date"] = int(time.time())
            self._messages[(edited["chat"]["id"], edited["message_id"])] = copy.deepcopy(edited)
            return {"update_id": self._next_update_id(), "edited_message": edited}

    def make_sticker_update(self, emoji: str = "👍", **kwargs: Any) -> dict[str, Any]:
        """A message with a sticker and no text (same keyword arguments as make_message_update)."""
        unique = next(self._ids)
        sticker = {
            "file_id": f"CAACAgIAAxkBAAIB{unique:06d}",
            "file_unique_id": f"AgAD{unique:06d}",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "set_name": "TestStickers",
            "file_size": 23456,
        }
        return self.make_message_update(None, sticker=sticker, **kwargs)

    def make_photo_update(self, caption: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """A message with a photo (and an optional caption) and no text."""
        unique = next(self._ids)
        photo = [
            {
                "file_id": f"AgACAgIAAxkBAAIC{unique:06d}{size}",
                "file_unique_id": f"AQAD{unique:06d}{size}",
                "width": size,
                "height": size * 3 // 4,
                "file_size": size * 50,
            }
            for size in (90, 320, 800)
        ]
        with self._lock:  # the bot may send the user's photo on by its file_id
            known = {"sizes": copy.deepcopy(photo), "data": None, "filename": None}
            self._files.update({size["file_id"]: known for size in photo})
        extra: dict[str, Any] = {"photo": photo}
        if caption is not None:
            extra["caption"] = caption
            found = find_auto_entities(caption)
            if found:
                extra["caption_entities"] = found
        return self.make_message_update(None, **extra, **kwargs)

    def make_callback_query_update(
        self,
        message: dict[str, Any],
        data: str,
        *,
        user_id: int = DEFAULT_USER_ID,
        check: bool = True,
    ) -> dict[str, Any]:
        """A "callback_query" update: the user pressed a button of ``message`` (a Message dict the
        bot sent). With ``check``, ``data`` must be the callback_data of one of its current buttons."""
        with self._lock:
            current = self._current(message)
            if check:
                markup = current.get("reply_markup") or {}
                available = [
                    button.get("callback_data")
                    for row in markup.get("inline_keyboard", [])
                    for button in row
                    if "callback_data" in button
                ]
                if data not in available:
                    raise ValueError(
                        f"no button with callback_data {data!r} on message {current['message_id']} in chat "
                        f"{current['chat']['id']}; its buttons carry {available} (pass check=False to force)"
                    )
            user = self.add_user(user_id)
            query_id = str(4_000_000_000_000_000 + next(self._ids))
            self._callback_queries[query_id] = {"answered": False, "user_id": user_id}
            query = {
                "id": query_id,
                "from": user,
                "message": current,
                "chat_instance": str(7_000_000_000_000 + abs(current["chat"]["id"])),
                "data": data,
            }
            return {"update_id": self._next_update_id(), "callback_query": query}

    def make_inline_query_update(
        self, query: str, *, user_id: int = DEFAULT_USER_ID, offset: str = "", chat_type: str | None = None
    ) -> dict[str, Any]:
        """An "inline_query" update (the user typed "@corpus_test_bot {query}")."""
        with self._lock:
            user = self.add_user(user_id)
            query_id = str(5_000_000_000_000_000 + next(self._ids))
            self._inline_queries[query_id] = {"answered": False, "user_id": user_id}
            inline: dict[str, Any] = {"id": query_id, "from": user, "query": query, "offset": offset}
            if chat_type is not None:
                inline["chat_type"] = chat_type
            return {"update_id": self._next_update_id(), "inline_query": inline}

    # Aliases with the other verb.
    build_update = make_update
    build_message_update = make_message_update
    build_edited_message_update = make_edited_message_update
    build_sticker_update = make_sticker_update
    build_photo_update = make_photo_update
    build_callback_query_update = make_callback_query_update
    build_inline_query_update = make_inline_query_update

    # ---------------------------------------------------------------- queueing (served by getUpdates)

    def queue(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates; returns it. An update_id that is missing or not above the
        ones already queued is replaced by a fresh one."""
        with self._lock:
            update = copy.deepcopy(update)
            highest = max((u["update_id"] for u in self._updates), default=0)
            if not isinstance(update.get("update_id"), int) or update["update_id"] <= highest:
                rest = {k: v for k, v in update.items() if k != "update_id"}
                update = {"update_id": self._next_update_id(), **rest}
            self._update_seq = max(self._update_seq, update["update_id"])
            self._updates.append(update)
        self._notify()
        return copy.deepcopy(update)

    def add_update(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Queue ``{"update_id": ..., kind: fields}``; returns the update."""
        return self.queue(self.make_update(kind, fields))

    def message(self, text: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Queue a message update (see make_message_update)."""
        return self.queue(self.make_message_update(text, **kwargs))

    def edited_message(self, message: dict[str, Any], text: str, **kwargs: Any) -> dict[str, Any]:
        return self.queue(self.make_edited_message_update(message, text, **kwargs))

    def sticker(self, emoji: str = "👍", **kwargs: Any) -> dict[str, Any]:
        return self.queue(self.make_sticker_update(emoji, **kwargs))

    def photo(self, caption: str | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.queue(self.make_photo_update(caption, **kwargs))

    def callback_query(self, message: dict[str, Any], data: str, **kwargs: Any) -> dict[str, Any]:
        return self.queue(self.make_callback_query_update(message, data, **kwargs))

    def inline_query(self, query: str, **kwargs: Any) -> dict[str, Any]:
        return self.queue(self.make_inline_query_update(query, **kwargs))

    async def post_to_webhook(
        self, update: dict[str, Any], *, url: str | None = None, secret_token: str | None = None
    ) -> httpx.Response:
        """POST ``update`` to the webhook the bot set (or ``url``) with its secret token header."""
        with self._lock:
            target = url or self._webhook.get("url") or ""
            secret = secret_token if secret_token is not None else self._webhook.get("secret_token")
        if not target:
            raise RuntimeError("no webhook is set and no url was given")
        headers = {"Content-Type": "application/json"}
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        async with httpx.AsyncClient() as client:
            response = await client.post(target, content=json.dumps(update), headers=headers, timeout=10)
        with self._lock:
            self.webhook_deliveries.append((copy.deepcopy(update), response.status_code))
        return response

    # ---------------------------------------------------------------- HTTP

    async def _endpoint(self, request: Request) -> Response:
        match = re.fullmatch(r"/bot([^/]+)/([^/]+)/?", request.url.path)
        if match is None:
            return _json_response(404, ApiError(404, "Not Found").body())
        token, raw_method = match.groups()
        entry = self._methods.get(raw_method.lower())
        method = entry.name if entry else raw_method
        parse_error: ApiError | None = None
        try:
            params = await _read_params(request)
        except ApiError as exc:
            params, parse_error = {}, exc
        with self._lock:
            self.calls.append(Call(method, params))
        self._notify()
        fault: ApiError | str | None = None
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            if parse_error is not None:
                raise parse_error
            delay = self._take(self._delays, method)
            if delay:
                await asyncio.sleep(delay)
            injected = self._take(self._failures, method)
            if injected is not None:
                self._record_injected(method, params, injected.description)
                return _json_response(injected.status, injected.body())
            fault = self._draw_fault(method)
            if isinstance(fault, ApiError):
                self._record_injected(method, params, fault.description)
                return _json_response(fault.status, fault.body())
            if fault == "before":
                self._record_injected(method, params, f"{_DROPPED} before {method} was carried out")
                return await self._drop_connection(request)
            refused = self._flood_refusal(method, params)
            if refused is not None:
                self._record_injected(method, params, refused.description)
                return _json_response(refused.status, refused.body())
            if entry is None:
                raise ApiError(404, "Not Found")
            args: tuple[Any, ...] = (params, request) if entry.wants_request else (params,)
            if entry.is_async:
                result = await entry.fn(*args)
            else:
                with self._lock:
                    result = entry.fn(*args)
                    if inspect.isawaitable(result):
                        raise TypeError("sync handler returned an awaitable")
        except _Abandoned:
            return _json_response(200, {"ok": True, "result": []})
        except ApiError as exc:
            self._reject(method, params, exc.description)
            response = _json_response(exc.status, exc.body())
        except Exception as exc:
            _LOG.exception("fake Telegram failed on %s", method)
            error = ApiError(500, f"Internal Server Error: the fake Telegram failed: {exc!r}")
            self._reject(method, params, error.description)
            response = _json_response(500, error.body())
        else:
            self._notify()
            body: dict[str, Any] = {"ok": True}
            if isinstance(result, _Described):
                body["result"], body["description"] = result.result, result.description
            else:
                body["result"] = result
            response = _json_response(200, body)
        if fault == "after":
            self._record_injected(method, params, f"{_DROPPED} after {method} was carried out")
            return await self._drop_connection(request)
        return response

    def _reject(self, method: str, params: dict[str, Any], description: str) -> None:
        with self._lock:
            self.errors.append(RejectedCall(method, params, description))
        self._notify()

    # ---------------------------------------------------------------- shared validation

    def _resolve_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        if isinstance(raw, str):
            text = raw.strip()
            if re.fullmatch(r"-?\d+", text):
                raw = int(text)
            elif text.startswith("@"):
                for chat in self._chats.values():
                    if chat["type"] != "private" and chat.get("username", "").lower() == text[1:].lower():
                        return chat
                raise _bad("chat not found")
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _bad("chat not found")
        chat = self._chats.get(raw)
        if chat is None:
            if raw > 0 and raw in self._users:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            if self.strict_chats:
                raise _bad("chat not found")
            chat = self.add_chat(raw, "private" if raw > 0 else "group")
            chat = self._chats[raw]
        if chat["type"] == "private" and chat["id"] in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _format(self, raw: Any, parse_mode: Any, entities: Any) -> tuple[str, list[dict[str, Any]]]:
        """Apply parse_mode (or explicit entities); raises EntityParseError or ApiError."""
        text = raw if isinstance(raw, str) else json.dumps(raw)
        mode = str(parse_mode or "").lower()
        if mode in ("", "none"):
            return text, self._explicit_entities(entities, text)
        if mode == "html":
            return parse_html(text, strict_ampersand=self.strict_html_ampersand)
        if mode == "markdownv2":
            return parse_markdown_v2(text)
        if mode == "markdown":
            return parse_markdown(text)
        raise _bad("unsupported parse_mode")

    @staticmethod
    def _explicit_entities(entities: Any, text: str) -> list[dict[str, Any]]:
        if entities is None:
            return []
        if not isinstance(entities, list):
            raise _bad("can't parse entities JSON object")
        size = utf16_len(text)
        result = []
        for entity in entities:
            if not isinstance(entity, dict):
                raise _bad("can't parse MessageEntity: MessageEntity must be an Object")
            kind, offset, length = entity.get("type"), entity.get("offset"), entity.get("length")
            if not isinstance(kind, str) or kind not in _ENTITY_TYPES:
                raise _bad(f"can't parse MessageEntity: unsupported entity type {kind!r}")
            if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length < 0:
                raise _bad("can't parse MessageEntity: wrong offset or length")
            if kind == "text_link" and not entity.get("url"):
                raise _bad("can't parse MessageEntity: Can't find field \"url\"")
            end = min(size, offset + length)
            if end > offset:
                result.append({**entity, "length": end - offset})
        return sorted(result, key=lambda e: (e["offset"], -e["length"]))

    def _message_text(
        self, params: dict[str, Any], key: str = "text", *, inline: bool = False
    ) -> tuple[str, list[dict[str, Any]]]:
        """Parse, trim and check a message text like sendMessage does."""
        raw = params.get(key)
        if raw is None or raw == "":
            raise _bad("MESSAGE_EMPTY" if inline else "message text is empty")
        entities_key = "caption_entities" if key == "caption" else "entities"
        try:
            text, entities = self._format(raw, params.get("parse_mode"), params.get(entities_key))
        except EntityParseError as exc:
            prefix = (
                "can't parse inline query result: Can't parse entities" if inline else "can't parse entities"
            )
            raise _bad(f"{prefix}: {exc}") from None
        text, entities = _trim(text, entities)
        if not text:
            raise _bad("MESSAGE_EMPTY" if inline else "message text is empty")
        if utf16_len(text) > MAX_MESSAGE_LENGTH:
            raise _bad("MESSAGE_TOO_LONG" if inline else "message is too long")
        entities = sorted(
            entities + find_auto_entities(text, entities), key=lambda e: (e["offset"], -e["length"])
        )
        return text, entities

    @staticmethod
    def _check_inline_keyboard(markup: Any) -> dict[str, Any]:
        keyboard = markup.get("inline_keyboard") if isinstance(markup, dict) else None
        if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
            raise _bad('Field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
        total = 0
        for row in keyboard:
            for button in row:
                total += 1
                if not isinstance(button, dict):
                    raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
                if "text" not in button:
                    raise _bad("can't parse inline keyboard button: Can't find field \"text\"")
                if not isinstance(button["text"], str):
                    raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
                if not button["text"].strip():
                    raise _bad("BUTTON_TEXT_INVALID")
                actions = [a for a in _BUTTON_ACTIONS if button.get(a) not in (None, "")]
                if not actions:
                    raise _bad(
                        "can't parse inline keyboard button: "
                        "Text buttons are unallowed in the inline keyboard"
                    )
                data = button.get("callback_data")
                if data not in (None, ""):
                    if not isinstance(data, str):
                        raise _bad(
                            "can't parse inline keyboard button: "
                            'Field "callback_data" must be of type String'
                        )
                    if len(data.encode("utf-8")) > MAX_CALLBACK_DATA_BYTES:
                        raise _bad("BUTTON_DATA_INVALID")
                url = button.get("url")
                if url not in (None, "") and (not isinstance(url, str) or _check_link(url) is None):
                    raise _bad("BUTTON_URL_INVALID")
        if total > MAX_INLINE_KEYBOARD_BUTTONS:
            raise _bad("REPLY_MARKUP_TOO_LONG")
        return copy.deepcopy(markup)

    def _check_reply_markup(self, markup: Any) -> dict[str, Any] | None:
        """Validate reply_markup; returns the inline keyboard to echo in the Message, if any."""
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            return self._check_inline_keyboard(markup)
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise _bad('Field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays')
            for row in rows:
                for button in row:
                    label = button.get("text") if isinstance(button, dict) else button
                    if not isinstance(label, str) or not label.strip():
                        raise _bad("BUTTON_TEXT_INVALID")
            return None
        if "remove_keyboard" in markup or "force_reply" in markup:
            return None
        raise _bad("can't parse reply keyboard markup JSON object")

    def _resolve_reply(self, params: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any] | None:
        reply = params.get("reply_parameters")
        if reply is None and params.get("reply_to_message_id") is not None:
            reply = {
                "message_id": params["reply_to_message_id"],
                "allow_sending_without_reply": params.get("allow_sending_without_reply", False),
            }
        if reply is None:
            return None
        if not isinstance(reply, dict):
            raise _bad("can't parse reply parameters JSON object")
        message_id = _int_param(reply, "message_id", "message to be replied not found")
        chat_id = chat["id"]
        if reply.get("chat_id") is not None:
            chat_id = self._resolve_chat({"chat_id": reply["chat_id"]})["id"]
        replied = self._messages.get((chat_id, message_id))
        if replied is None:
            if reply.get("allow_sending_without_reply"):
                return None
            raise _bad("message to be replied not found")
        return _without_reply(replied)

    def _editable(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._resolve_chat(params)
        message_id = _int_param(params, "message_id", "message identifier is not specified")
        message = self._messages.get((chat["id"], message_id))
        if message is None:
            raise _bad("message to edit not found")
        if message["from"]["id"] != BOT_ID:
            raise _bad("message can't be edited")
        return message

    @staticmethod
    def _scope_key(scope: Any) -> str:
        return json.dumps(scope or {"type": "default"}, sort_keys=True)

    def _check_query(
        self, table: dict[str, dict[str, Any]], params: dict[str, Any], key: str
    ) -> dict[str, Any]:
        query = table.get(str(params.get(key, "")))
        if query is None or query["answered"]:
            raise ApiError(400, _QUERY_INVALID)
        return query

    # ---------------------------------------------------------------- methods

    def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(self.bot_user)

    async def _get_updates(self, params: dict[str, Any], request: Request) -> list[dict[str, Any]]:
        offset = _int_param(params, "offset", "") if params.get("offset") not in (None, "") else None
        limit = _int_param(params, "limit", "") if params.get("limit") not in (None, "") else 100
        limit = min(100, max(1, limit))
        try:
            timeout = max(0.0, float(params.get("timeout") or 0))
        except (TypeError, ValueError):
            raise _bad("invalid timeout specified") from None
        allowed = params.get("allowed_updates")
        with self._lock:
            if self._webhook.get("url"):
                raise ApiError(409, _WEBHOOK_CONFLICT)
            self._poll_generation += 1
            generation = self._poll_generation
            if allowed is not None:
                if not isinstance(allowed, list) or not all(isinstance(k, str) for k in allowed):
                    raise _bad("can't parse allowed_updates JSON object")
                self._allowed_updates = list(allowed)
            if offset is not None:
                self._confirm(offset)
        self._notify()  # an older poll still waiting gets terminated with 409 Conflict
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        event = asyncio.Event()
        disconnected = False

        async def watch_disconnect() -> None:
            nonlocal disconnected
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    disconnected = True
                    event.set()
                    return

        watcher = asyncio.create_task(watch_disconnect()) if timeout > 0 else None
        superseded_at: float | None = None
        try:
            with self._subscribed(self._async_waker(event)):
                while True:
                    event.clear()
                    if disconnected:
                        raise _Abandoned
                    with self._lock:
                        if self._closing:
                            return []
                        if self._webhook.get("url"):
                            raise ApiError(409, _WEBHOOK_CONFLICT)
                        superseded = self._poll_generation != generation
                        if not superseded:
                            updates = self._deliverable(limit)
                            if updates or loop.time() >= deadline:
                                return updates
                    wait_until = deadline
                    if superseded:
                        # A client that gave up on this poll (PTB cancels it on stop) disconnects at
                        # once; only a poll that is still connected is a real second bot instance.
                        if superseded_at is None:
                            superseded_at = loop.time()
                        if loop.time() - superseded_at >= 0.25 or watcher is None:
                            raise ApiError(409, _POLL_CONFLICT)
                        wait_until = superseded_at + 0.25
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), max(0.0, wait_until - loop.time()))
        finally:
            if watcher is not None:
                watcher.cancel()

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            self._updates = self._updates[offset:]
        else:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self.confirmed_offset = max(self.confirmed_offset, offset)

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        allowed = self._allowed_updates
        kept = []
        for update in self._updates:
            kind = _update_kind(update)
            if (kind in allowed) if allowed else (kind not in _NOT_SENT_BY_DEFAULT):
                kept.append(update)
        self._updates = kept  # Telegram never sends the others
        return copy.deepcopy(kept[:limit])

    def _set_webhook(self, params: dict[str, Any]) -> _Described:
        url = params.get("url") or ""
        if not isinstance(url, str):
            raise _bad("bad webhook: Wrong HTTP URL")
        if not url:
            return self._delete_webhook(params)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise _bad("bad webhook: Wrong HTTP URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad("bad webhook: Wrong HTTP URL")
        if self.require_https_webhook:
            if parts.scheme != "https":
                raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
            if port not in (None, 80, 88, 443, 8443):
                raise _bad("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        secret = params.get("secret_token")
        if secret is not None and (
            not isinstance(secret, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret)
        ):
            raise _bad("secret token contains unallowed characters")
        max_connections = params.get("max_connections", 40)
        if not isinstance(max_connections, int) or not 1 <= max_connections <= 100:
            raise _bad("bad webhook: max_connections must be between 1 and 100")
        allowed = params.get("allowed_updates")
        if allowed is not None:
            if not isinstance(allowed, list):
                raise _bad("can't parse allowed_updates JSON object")
            self._allowed_updates = list(allowed)
        if params.get("drop_pending_updates"):
            self._updates.clear()
        already = self._webhook.get("url") == url
        self._webhook = {
            "url": url,
            "secret_token": secret,
            "max_connections": max_connections,
            "allowed_updates": copy.deepcopy(allowed),
            "drop_pending_updates": bool(params.get("drop_pending_updates")),
            "ip_address": params.get("ip_address"),
            "has_custom_certificate": params.get("certificate") is not None,
        }
        return _Described(True, "Webhook is already set" if already else "Webhook was set")

    def _delete_webhook(self, params: dict[str, Any]) -> _Described:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        had = bool(self._webhook.get("url"))
        self._webhook = {"url": ""}
        return _Described(True, "Webhook was deleted" if had else "Webhook is already deleted")

    def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self._webhook.get("url", ""),
            "has_custom_certificate": bool(self._webhook.get("has_custom_certificate")),
            "pending_update_count": len(self._updates),
        }
        if info["url"]:
            info["max_connections"] = self._webhook["max_connections"]
            info["ip_address"] = self._webhook.get("ip_address") or "127.0.0.1"
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
        return info

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._resolve_chat(params)
        text, entities = self._message_text(params)
        markup = self._check_reply_markup(params.get("reply_markup"))
        content = self._reply_context(params, chat)
        content["text"] = text
        if entities:
            content["entities"] = entities
        if markup is not None:
            content["reply_markup"] = markup
        message = self._send_as_bot(chat, content)
        return copy.deepcopy(message)

    def _reply_context(self, params: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any]:
        """The start of a sent message's content: its thread and the message it replies to, if any."""
        replied = self._resolve_reply(params, chat)
        content: dict[str, Any] = {}
        if params.get("message_thread_id") is not None:
            content["message_thread_id"] = params["message_thread_id"]
        if replied is not None:
            content["reply_to_message"] = replied
        return content

    def _send_as_bot(self, chat: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        """Store ``content`` as a message the bot sent to ``chat`` and record it as sent."""
        sender = {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}
        message = self._store_message(chat, sender, content)
        self._sent.append(copy.deepcopy(message))
        return message

    def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._resolve_chat(params)
        caption, entities = self._caption(params)
        markup = self._check_reply_markup(params.get("reply_markup"))
        content = self._reply_context(params, chat)
        sizes, upload = self._photo(params)
        content["photo"] = sizes
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
        if caption and params.get("show_caption_above_media") is True:
            content["show_caption_above_media"] = True
        if params.get("has_spoiler") is True:
            content["has_media_spoiler"] = True
        if markup is not None:
            content["reply_markup"] = markup
        message = self._send_as_bot(chat, content)
        self._photos.append({"message": copy.deepcopy(message), **upload})
        return copy.deepcopy(message)

    def _caption(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """A media caption parsed, trimmed and checked like Telegram does ("" when there is none)."""
        raw = params.get("caption")
        if raw is None or raw == "":
            return "", []
        try:
            caption, entities = self._format(raw, params.get("parse_mode"), params.get("caption_entities"))
        except EntityParseError as exc:
            raise _bad(f"can't parse entities: {exc}") from None
        caption, entities = _trim(caption, entities)
        if utf16_len(caption) > MAX_CAPTION_LENGTH:
            raise _bad("message caption is too long")
        entities = sorted(
            entities + find_auto_entities(caption, entities), key=lambda e: (e["offset"], -e["length"])
        )
        return caption, entities

    def _photo(self, params: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The PhotoSizes of the ``photo`` parameter and what sent_photos() keeps of it."""
        photo = params.get("photo")
        if isinstance(photo, str) and photo.startswith("attach://"):
            photo = params.get(photo[len("attach://") :])
            if not isinstance(photo, UploadedFile):
                raise _bad("wrong file identifier/HTTP URL specified")
        if photo is None or photo == "":
            raise _bad("there is no photo in the request")
        if isinstance(photo, UploadedFile):
            data = photo.data
            if len(data) > MAX_PHOTO_BYTES:
                raise _bad("file is too big")
            size = image_size(data)
            if size is None:
                raise _bad("IMAGE_PROCESS_FAILED")
            width, height = size
            if width + height > MAX_PHOTO_SIDES or max(width, height) > MAX_PHOTO_RATIO * min(width, height):
                raise _bad("PHOTO_INVALID_DIMENSIONS")
            return self._issue_photo(width, height, len(data), data, photo.filename)
        if not isinstance(photo, str):
            raise _bad("wrong file identifier/HTTP URL specified")
        if re.match(r"https?://", photo, re.IGNORECASE) and _check_link(photo) is not None:
            width, height = URL_PHOTO_SIZE
            return self._issue_photo(width, height, width * height // 10, None, None)
        known = self._files.get(photo.strip())
        if known is None:
            raise _bad("wrong file identifier/HTTP URL specified")
        return copy.deepcopy(known["sizes"]), {"data": known["data"], "filename": known["filename"]}

    def _issue_photo(
        self, width: int, height: int, file_size: int, data: bytes | None, filename: str | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """New file ids for a photo: a size scaled to PHOTO_THUMBNAIL_SIDE (if it is larger), then itself."""
        unique = next(self._ids)
        dims = [(width, height)]
        longer = max(width, height)
        if longer > PHOTO_THUMBNAIL_SIDE:
            scale = PHOTO_THUMBNAIL_SIDE / longer
            dims.insert(0, (max(1, round(width * scale)), max(1, round(height * scale))))
        sizes = [
            {
                "file_id": f"AgACAgIAAxkDAAIE{unique:06d}{n}",
                "file_unique_id": f"AQADE{unique:06d}{n}",
                "width": w,
                "height": h,
                "file_size": max(1, round(file_size * w * h / (width * height))),
            }
            for n, (w, h) in enumerate(dims)
        ]
        kept = {"data": data, "filename": filename}
        for size in sizes:
            self._files[size["file_id"]] = {"sizes": copy.deepcopy(sizes), **kept}
        return sizes, kept

    def _edit_message_text(self, params: dict[str, Any]) -> Any:
        if params.get("inline_message_id"):
            text, entities = self._message_text(params)
            markup = self._check_reply_markup(params.get("reply_markup"))
            edit = {"inline_message_id": params["inline_message_id"], "text": text, "entities": entities}
            self._edited.append({**edit, "reply_markup": markup})
            return True
        message = self._editable(params)
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        text, entities = self._message_text(params)
        markup = self._check_reply_markup(params.get("reply_markup"))
        if (
            text == message["text"]
            and entities == message.get("entities", [])
            and markup == message.get("reply_markup")
        ):
            raise ApiError(400, _NOT_MODIFIED)
        message["text"] = text
        message.pop("entities", None)
        if entities:
            message["entities"] = entities
        self._set_markup(message, markup)
        return self._record_edit(message)

    def _edit_message_caption(self, params: dict[str, Any]) -> Any:
        caption, entities = self._caption(params)
        markup = self._check_reply_markup(params.get("reply_markup"))
        if params.get("inline_message_id"):
            edit = {"inline_message_id": params["inline_message_id"], "caption": caption,
                    "caption_entities": entities, "reply_markup": markup}  # fmt: skip
            self._edited.append(edit)
            return True
        message = self._editable(params)
        if not any(kind in message for kind in _MEDIA_KINDS):
            raise _bad("there is no caption in the message to edit")
        if (
            caption == message.get("caption", "")
            and entities == message.get("caption_entities", [])
            and markup == message.get("reply_markup")
        ):
            raise ApiError(400, _NOT_MODIFIED)
        message.pop("caption", None)
        message.pop("caption_entities", None)
        if caption:
            message["caption"] = caption
        if entities:
            message["caption_entities"] = entities
        self._set_markup(message, markup)
        return self._record_edit(message)

    def _edit_message_reply_markup(self, params: dict[str, Any]) -> Any:
        markup = self._check_reply_markup(params.get("reply_markup"))
        if params.get("inline_message_id"):
            self._edited.append({"inline_message_id": params["inline_message_id"], "reply_markup": markup})
            return True
        message = self._editable(params)
        if markup == message.get("reply_markup"):
            raise ApiError(400, _NOT_MODIFIED)
        self._set_markup(message, markup)
        return self._record_edit(message)

    @staticmethod
    def _set_markup(message: dict[str, Any], markup: dict[str, Any] | None) -> None:
        message.pop("reply_markup", None)  # an edit without reply_markup removes the keyboard
        if markup is not None:
            message["reply_markup"] = markup

    def _record_edit(self, message: dict[str, Any]) -> dict[str, Any]:
        message["edit_date"] = int(time.time())
        self._edited.append(copy.deepcopy(message))
        return copy.deepcopy(message)

    def _delete_message(self, params: dict[str, Any]) -> bool:
        chat = self._resolve_chat(params)
        message_id = _int_param(params, "message_id", "message identifier is not specified")
        message = self._messages.get((chat["id"], message_id))
        if message is None:
            raise _bad("message to delete not found")
        if message["from"]["id"] != BOT_ID and chat["type"] != "private":
            raise _bad("message can't be deleted")
        del self._messages[(chat["id"], message_id)]
        self.deleted_messages.append(copy.deepcopy(params))
        return True

    def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        query = self._check_query(self._callback_queries, params, "callback_query_id")
        text = params.get("text") or ""
        if not isinstance(text, str) or len(text) > MAX_CALLBACK_ANSWER_LENGTH:
            raise _bad("MESSAGE_TOO_LONG")
        url = params.get("url")
        if url not in (None, "") and (not isinstance(url, str) or _check_link(url) is None):
            raise _bad("URL_INVALID")
        query["answered"] = True
        self.callback_answers.append(copy.deepcopy(params))
        return True

    def _answer_inline_query(self, params: dict[str, Any]) -> bool:
        query = self._check_query(self._inline_queries, params, "inline_query_id")
        results = params.get("results")
        if results is None:
            raise _bad('parameter "results" is required')
        if not isinstance(results, list):
            raise _bad("can't parse inline query results JSON object")
        if len(results) > MAX_INLINE_RESULTS:
            raise _bad("RESULTS_TOO_MUCH")
        seen: set[str] = set()
        for result in results:
            self._check_inline_result(result, seen)
        next_offset = params.get("next_offset") or ""
        if len(str(next_offset).encode("utf-8")) > MAX_INLINE_NEXT_OFFSET_BYTES:
            raise _bad("NEXT_OFFSET_INVALID")
        cache_time = params.get("cache_time", 300)
        if not isinstance(cache_time, int) or cache_time < 0:
            raise _bad("invalid cache_time specified")
        query["answered"] = True
        self.inline_answers.append({**copy.deepcopy(params), "cache_time": cache_time})
        return True

    def _check_inline_result(self, result: Any, seen: set[str]) -> None:
        def fail(why: str) -> ApiError:
            return _bad(f"can't parse inline query result: {why}")

        if not isinstance(result, dict):
            raise fail("InlineQueryResult must be an Object")
        kind = result.get("type")
        if not isinstance(kind, str) or kind.lower() not in _INLINE_RESULT_REQUIRED:
            raise fail(f'type "{kind}" is unsupported for the inline query result')
        result_id = result.get("id")
        if (
            not isinstance(result_id, str)
            or not 1 <= len(result_id.encode("utf-8")) <= MAX_INLINE_RESULT_ID_BYTES
        ):
            raise _bad("RESULT_ID_INVALID")
        if result_id in seen:
            raise _bad("RESULT_ID_DUPLICATE")
        seen.add(result_id)
        kind = kind.lower()
        cached = f"{kind}_file_id" in result
        for name in _INLINE_RESULT_REQUIRED[kind]:
            if cached and (name.endswith("_url") or name == "mime_type"):
                continue
            if result.get(name) in (None, ""):
                raise fail(f'Can\'t find field "{name}"')
        content = result.get("input_message_content")
        if content is not None:
            if not isinstance(content, dict):
                raise fail("InputMessageContent must be an Object")
            if "message_text" in content:
                self._message_text(content, "message_text", inline=True)
        if result.get("reply_markup") is not None:
            self._check_inline_keyboard(result["reply_markup"])

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if commands is None:
            raise _bad('parameter "commands" is required')
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > MAX_COMMANDS:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        cleaned = []
        for item in commands:
            if not isinstance(item, dict):
                raise _bad("can't parse BotCommand: BotCommand must be an Object")
            command, description = item.get("command"), item.get("description")
            if not isinstance(command, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", command):
                raise _bad("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": command, "description": description})
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self._commands[key] = cleaned
        return True

    def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, str]]:
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        return copy.deepcopy(self._commands.get(key, []))

    def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self._commands.pop(key, None)
        return True

    def _bot_text_setter(self, field: str, limit: int) -> Callable[[dict[str, Any]], bool]:
        def handler(params: dict[str, Any]) -> bool:
            value = params.get(field) or ""
            if not isinstance(value, str) or len(value) > limit:
                raise _bad(f"{field} is too long")
            self._bot_texts[(field, str(params.get("language_code") or ""))] = value
            return True

        return handler

    def _bot_text_getter(self, field: str) -> Callable[[dict[str, Any]], dict[str, str]]:
        def handler(params: dict[str, Any]) -> dict[str, str]:
            return {field: self._bot_texts.get((field, str(params.get("language_code") or "")), "")}

        return handler

    def _send_chat_action(self, params: dict[str, Any]) -> bool:
        chat = self._resolve_chat(params)
        action = params.get("action")
        if action not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        self.chat_actions.append({**copy.deepcopy(params), "chat_id": chat["id"]})
        return True


def _flood_chat(params: dict[str, Any]) -> int | None:
    """The chat a call writes to for flood control: its id (an @username counts as a channel: 0), or None
    (an inline message)."""
    raw = params.get("chat_id")
    if raw is None or raw == "":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
        return int(raw)
    return 0


def _short(params: dict[str, Any], limit: int = 160) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main(argv: list[str] | None = None) -> None:
    """Run the fake in the foreground: ``python -m tests.fake_telegram --port 8081``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--lenient-chats", action="store_true", help="accept sends to unknown chats")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    async def serve() -> None:
        fake = FakeTelegram(args.token, host=args.host, port=args.port, strict_chats=not args.lenient_chats)
        async with fake:
            _LOG.info("fake Telegram serving at %s (token %s)", fake.api_url, fake.token)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()

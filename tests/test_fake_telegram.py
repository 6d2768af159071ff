"""Tests of the fake Telegram Bot API server, driven by python-telegram-bot's real Bot over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    ReplyParameters,
    Update,
)
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes

from tests import fake_telegram
from tests.fake_telegram import (
    BOT_ID,
    DEFAULT_TOKEN,
    FakeTelegram,
    image_size,
    parse_html,
    parse_markdown_v2,
    utf16_len,
)

TOKEN = DEFAULT_TOKEN
USER = 4242


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        fake.add_chat(USER)
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=tg.api_url, base_file_url=tg.file_url) as real_bot:
        yield real_bot


def api_error(description: str) -> str:
    """A match= pattern for a Bot API error description (PTB strips "Bad Request: " and capitalize()s)."""
    return f"(?i){re.escape(description)}"


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(d or "x", callback_data=d) for d in data]])


def png(width: int, height: int, *, pixels: bool = True) -> bytes:
    """A whole 8-bit greyscale PNG; without ``pixels`` the IDAT holds no rows (a header that only
    claims the size, for sizes too large to fill cheaply)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + bytes([y % 256]) * width for y in range(height)) if pixels else b""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg(width: int, height: int, frame: int = 0xC0) -> bytes:
    """The segments of a JPEG up to its scan: SOI, APP0 (JFIF), a frame header, SOS, then EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof = bytes([0xFF, frame]) + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\0"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\0\0\x3f\0"
    return b"\xff\xd8" + app0 + sof + sos + b"\x12\x34" + b"\xff\xd9"


async def send_photo(tg: FakeTelegram, photo: bytes | str, **fields: str) -> httpx.Response:
    """sendPhoto as multipart/form-data over real HTTP (``photo`` bytes are uploaded as a file)."""
    data = {"chat_id": str(USER), **fields}
    files = None
    if isinstance(photo, bytes):
        files = {"photo": ("chart.png", photo, "image/png")}
    else:
        data["photo"] = photo
    async with httpx.AsyncClient() as client:
        return await client.post(f"{tg.api_url}{TOKEN}/sendPhoto", data=data, files=files, timeout=10)


# ------------------------------------------------------------------------------------------ basics


async def test_get_me(bot: Bot, tg: FakeTelegram) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.first_name, me.username) == (BOT_ID, True, "Corpus Bot", "corpus_test_bot")
    assert me.can_join_groups and me.supports_inline_queries
    assert tg.calls[0].method == "getMe"


async def test_wrong_token_and_unknown_method(tg: FakeTelegram) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("999:wrong", base_url=tg.api_url):  # initialize() calls getMe
            pass
    async with httpx.AsyncClient() as client:
        unknown = await client.post(f"{tg.api_url}{TOKEN}/fooBar", data={"x": "1"})
        wrong = await client.post(f"{tg.api_url}nope/getMe")
    assert unknown.status_code == 404
    assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert [e.description for e in tg.errors] == ["Unauthorized", "Not Found", "Unauthorized"]


async def test_request_encodings_are_decoded(tg: FakeTelegram) -> None:
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    url = f"{tg.api_url}{TOKEN}/sendMessage"
    async with httpx.AsyncClient() as client:
        as_json = await client.post(url, json={"chat_id": USER, "text": "json", "reply_markup": markup})
        as_form = await client.post(
            url, data={"chat_id": str(USER), "text": "123", "reply_markup": json.dumps(markup)}
        )
        as_multipart = await client.post(
            url,
            data={"chat_id": str(USER), "text": "line 1\nline 2 é", "reply_markup": json.dumps(markup)},
            files={"document": ("a.txt", b"hello", "text/plain")},
        )
        broken = await client.post(url, data={"chat_id": str(USER), "text": "x", "reply_markup": "{oops"})
    for response in (as_json, as_form, as_multipart):
        assert response.status_code == 200, response.text
        assert response.json()["result"]["reply_markup"] == markup
    assert as_form.json()["result"]["text"] == "123"
    assert as_multipart.json()["result"]["text"] == "line 1\nline 2 é"
    assert tg.calls[1].params["chat_id"] == USER and tg.calls[1].params["reply_markup"] == markup
    assert tg.calls[2].params["document"].data == b"hello"
    assert broken.status_code == 400
    assert [m["message_id"] for m in tg.sent_messages(USER)] == [1, 2, 3]


# ------------------------------------------------------------------------------------ sendMessage


async def test_send_message_parses_html_into_entities(bot: Bot, tg: FakeTelegram) -> None:
    html = (
        '😀 <b>bold <i>both</i></b> &lt;3 &amp; <a href="https://example.com">link</a> '
        '<pre><code class="language-python">x = 1</code></pre><blockquote expandable>q</blockquote>'
        '<span class="tg-spoiler">s</span> /help'
    )
    message = await bot.send_message(USER, html, parse_mode="HTML", reply_markup=keyboard("a", "b"))
    assert message.text == "😀 bold both <3 & link x = 1qs /help"
    entities = [(e.type, e.offset, e.length) for e in message.entities]
    assert entities == [
        ("bold", 3, 9),
        ("italic", 8, 4),
        ("text_link", 18, 4),
        ("pre", 23, 5),
        ("expandable_blockquote", 28, 1),
        ("spoiler", 29, 1),
        ("bot_command", 31, 5),
    ]
    assert message.entities[2].url == "https://example.com/"
    assert message.entities[3].language == "python"
    assert message.reply_markup == keyboard("a", "b")
    assert message.from_user.id == BOT_ID and message.chat.id == USER
    second = await bot.send_message(USER, "again")
    assert second.message_id == message.message_id + 1
    tg.assert_no_errors()


@pytest.mark.parametrize(
    "text",
    ["line<br>break", "a < b", "<b>mis</i>", "<b>unclosed", "</b>", "AT&T", "<i>x</i></i>", '<a href="x>y'],
)
async def test_invalid_html_is_rejected(bot: Bot, tg: FakeTelegram, text: str) -> None:
    with pytest.raises(BadRequest, match=api_error("can't parse entities")):
        await bot.send_message(USER, text, parse_mode="HTML")
    assert tg.errors and tg.errors[0].method == "sendMessage"
    assert tg.sent_messages() == []


async def test_markdown_v2_reserved_characters(bot: Bot) -> None:
    with pytest.raises(BadRequest, match=api_error("Character '.' is reserved")):
        await bot.send_message(USER, "Done.", parse_mode="MarkdownV2")
    message = await bot.send_message(USER, r"*Done*\. _it_ [x](https://t.me)", parse_mode="MarkdownV2")
    assert message.text == "Done. it x"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [
        ("bold", 0, 4),
        ("italic", 6, 2),
        ("text_link", 9, 1),
    ]


async def test_text_length_is_counted_in_utf16_after_parsing(bot: Bot) -> None:
    await bot.send_message(USER, "a" * 4096)
    await bot.send_message(USER, "😀" * 2048)
    await bot.send_message(USER, "&amp;" * 4096, parse_mode="HTML")  # 4096 characters once parsed
    for too_long in ("a" * 4097, "😀" * 2049):
        with pytest.raises(BadRequest, match=api_error("message is too long")):
            await bot.send_message(USER, too_long)
    for empty in ("   \n ", "<b></b>"):
        with pytest.raises(BadRequest, match=api_error("message text is empty")):
            await bot.send_message(USER, empty, parse_mode="HTML")


async def test_inline_keyboard_validation(bot: Bot, tg: FakeTelegram) -> None:
    await bot.send_message(USER, "ok", reply_markup=keyboard("x" * 64))
    for data in ("x" * 65, "é" * 33):
        with pytest.raises(BadRequest, match=api_error("BUTTON_DATA_INVALID")):
            await bot.send_message(USER, "no", reply_markup=keyboard(data))
    empty_text = InlineKeyboardMarkup([[InlineKeyboardButton("", callback_data="a")]])
    with pytest.raises(BadRequest, match=api_error("BUTTON_TEXT_INVALID")):
        await bot.send_message(USER, "no", reply_markup=empty_text)
    no_action = {"inline_keyboard": [[{"text": "plain"}]]}
    with pytest.raises(BadRequest, match=api_error("Text buttons are unallowed")):
        await bot.send_message(USER, "no", reply_markup=no_action)  # type: ignore[arg-type]
    assert len(tg.errors) == 4 and len(tg.sent_messages()) == 1


async def test_chats_replies_and_blocking(bot: Bot, tg: FakeTelegram) -> None:
    with pytest.raises(BadRequest, match=api_error("chat not found")):
        await bot.send_message(123, "who?")
    tg.make_message_update("hi all", chat_type="group", user_id=77)
    with pytest.raises(Forbidden, match=api_error("can't initiate conversation")):
        await bot.send_message(77, "psst")
    with pytest.raises(BadRequest, match=api_error("message to be replied not found")):
        await bot.send_message(USER, "re", reply_parameters=ReplyParameters(message_id=99))
    await bot.send_message(
        USER, "re", reply_parameters=ReplyParameters(message_id=99, allow_sending_without_reply=True)
    )
    question = tg.make_message_update("question?", user_id=USER)["message"]
    answer = await bot.send_message(USER, "answer", reply_parameters=ReplyParameters(question["message_id"]))
    assert answer.reply_to_message.text == "question?"
    tg.block_bot(USER)
    with pytest.raises(Forbidden, match=api_error("blocked")):
        await bot.send_chat_action(USER, "typing")


# -------------------------------------------------------------------------------------- photos


async def test_send_photo_upload_gets_its_sizes_caption_and_reply(tg: FakeTelegram) -> None:
    image = png(640, 360)
    question = tg.make_message_update("chart please", user_id=USER)["message"]
    markup = {"inline_keyboard": [[{"text": "Earliest", "callback_data": "q|harbour sort:old"}]]}
    response = await send_photo(
        tg,
        image,
        caption="📈 <i>harbour</i>: 12 sentences, see https://example.org",
        parse_mode="HTML",
        reply_markup=json.dumps(markup),
        reply_parameters=json.dumps({"message_id": question["message_id"]}),
    )
    assert response.status_code == 200, response.text
    message = response.json()["result"]
    small, large = message["photo"]
    assert (small["width"], small["height"], large["width"], large["height"]) == (320, 180, 640, 360)
    assert large["file_size"] == len(image) and 0 < small["file_size"] < len(image)
    assert len({small["file_id"], large["file_id"], small["file_unique_id"], large["file_unique_id"]}) == 4
    assert message["caption"] == "📈 harbour: 12 sentences, see https://example.org"
    assert [(e["type"], e["offset"], e["length"]) for e in message["caption_entities"]] == [
        ("italic", 3, 7),
        ("url", 30, 19),
    ]
    assert "text" not in message and message["reply_markup"] == markup
    assert message["reply_to_message"]["text"] == "chart please"
    assert tg.sent_messages(USER) == [message]
    [sent] = tg.sent_photos(USER)
    assert sent == {"message": message, "data": image, "filename": "chart.png"}
    assert tg.sent_photos(-1) == []

    # Sent again by either file_id: the same photo, no upload; a URL is taken as it is.
    again = (await send_photo(tg, small["file_id"])).json()["result"]
    assert again["photo"] == message["photo"] and "caption" not in again
    by_url = (await send_photo(tg, "https://example.org/chart.png")).json()["result"]
    assert [size["width"] for size in by_url["photo"]] == [320, 800]
    assert [p["data"] for p in tg.sent_photos()] == [image, image, None]
    tiny = (await send_photo(tg, png(20, 10))).json()["result"]
    assert [(size["width"], size["height"]) for size in tiny["photo"]] == [(20, 10)]  # no smaller size
    tg.assert_no_errors()


async def test_send_photo_through_python_telegram_bot(bot: Bot, tg: FakeTelegram) -> None:
    image = jpeg(1280, 720)
    message = await bot.send_photo(USER, image, caption="<b>jpeg</b>", parse_mode="HTML")
    assert [(p.width, p.height) for p in message.photo] == [(320, 180), (1280, 720)]
    assert message.caption == "jpeg" and message.caption_entities[0].type == "bold"
    assert tg.sent_photos(USER)[0]["data"] == image
    user_photo = tg.make_photo_update(user_id=USER)["message"]["photo"][-1]["file_id"]
    forwarded = await bot.send_photo(USER, user_photo)  # a file_id the fake gave a user's photo
    assert forwarded.photo[-1].width == 800
    tg.assert_no_errors()


@pytest.mark.parametrize(
    ("photo", "fields", "description"),
    [
        (png(64, 64), {"caption": "x" * 1025}, "message caption is too long"),
        (png(64, 64), {"caption": "😀" * 513}, "message caption is too long"),  # UTF-16 units
        (png(64, 64), {"caption": "<b>x</i>", "parse_mode": "HTML"}, "can't parse entities"),
        (b"hello, not an image", {}, "IMAGE_PROCESS_FAILED"),
        (b"GIF89a" + b"\0" * 32, {}, "IMAGE_PROCESS_FAILED"),
        (png(64, 64)[:-12], {}, "IMAGE_PROCESS_FAILED"),  # cut before IEND
        (png(64, 64).replace(b"IHDR", b"IHDX"), {}, "IMAGE_PROCESS_FAILED"),
        (png(9000, 100, pixels=False), {}, "PHOTO_INVALID_DIMENSIONS"),  # 90:1
        (png(6000, 4001, pixels=False), {}, "PHOTO_INVALID_DIMENSIONS"),  # 10001 pixels of sides
        (jpeg(100, 2001), {}, "PHOTO_INVALID_DIMENSIONS"),
        (jpeg(100, 100, frame=0xC3), {}, "IMAGE_PROCESS_FAILED"),  # lossless JPEG
        ("not-a-file-id", {}, "wrong file identifier/HTTP URL specified"),
        ("", {}, "there is no photo in the request"),
    ],
    ids=[
        "long-caption", "long-emoji-caption", "bad-html", "text", "gif", "truncated", "no-ihdr", "too-wide",
        "too-large", "too-tall-jpeg", "lossless-jpeg", "unknown-file-id", "no-photo",
    ],
)  # fmt: skip
async def test_send_photo_rejects_what_telegram_rejects(
    tg: FakeTelegram, photo: bytes | str, fields: dict[str, str], description: str
) -> None:
    response = await send_photo(tg, photo, **fields)
    assert response.status_code == 400
    assert response.json()["description"].startswith(f"Bad Request: {description}")
    assert [e.method for e in tg.errors] == ["sendPhoto"]
    assert tg.sent_messages() == [] and tg.sent_photos() == []


async def test_send_photo_limits_are_inclusive(tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch) -> None:
    small = png(64, 64)
    fits = [
        (small, {"caption": "<b>" + "&amp;" * 1024 + "</b>", "parse_mode": "HTML"}),  # 1024 once parsed
        (small, {"caption": "😀" * 512}),
        (png(2000, 100, pixels=False), {}),  # 20:1
        (png(5000, 5000, pixels=False), {}),  # 10000 pixels of sides
        (small + b"\0" * (10 * 1024 * 1024 - len(small)), {}),  # 10 MB exactly (bytes after IEND)
    ]
    for photo, fields in fits:
        response = await send_photo(tg, photo, **fields)
        assert response.status_code == 200, response.text
    assert fake_telegram.MAX_PHOTO_BYTES == 10 * 1024 * 1024
    monkeypatch.setattr(fake_telegram, "MAX_PHOTO_BYTES", len(small))  # one byte more, without 10 MB again
    assert (await send_photo(tg, small)).status_code == 200
    response = await send_photo(tg, small + b"\0")
    assert response.json()["description"] == "Bad Request: file is too big"
    assert len(tg.sent_photos()) == len(fits) + 1


async def test_a_photo_has_a_caption_to_edit_and_no_text(bot: Bot, tg: FakeTelegram) -> None:
    photo = await bot.send_photo(USER, png(400, 300), caption="v1", reply_markup=keyboard("a"))
    with pytest.raises(BadRequest, match=api_error("there is no text in the message to edit")):
        await bot.edit_message_text("v2", USER, photo.message_id)
    with pytest.raises(BadRequest, match=api_error("message is not modified")):
        await bot.edit_message_caption(USER, photo.message_id, caption="v1", reply_markup=keyboard("a"))
    edited = await bot.edit_message_caption(USER, photo.message_id, caption="<i>v2</i>", parse_mode="HTML")
    assert edited.caption == "v2" and edited.reply_markup is None and edited.photo == photo.photo
    await bot.edit_message_reply_markup(USER, photo.message_id, reply_markup=keyboard("b"))
    text = await bot.send_message(USER, "words")
    with pytest.raises(BadRequest, match=api_error("there is no caption in the message to edit")):
        await bot.edit_message_caption(USER, text.message_id, caption="x")
    current = tg.get_message(USER, photo.message_id)
    assert current["caption"] == "v2" and current["caption_entities"][0]["type"] == "italic"
    assert len(tg.errors) == 3


def test_image_size_reads_png_and_jpeg_headers() -> None:
    assert image_size(png(3, 2)) == (3, 2)
    assert image_size(jpeg(1280, 720)) == (1280, 720)
    assert image_size(jpeg(33, 44, frame=0xC2)) == (33, 44)  # progressive
    assert image_size(b"\xff\xd8\xff\xd9") is None  # no frame
    assert image_size(png(0, 5, pixels=False)) is None
    assert image_size(b"") is None


# -------------------------------------------------------------------------------------- edits


async def test_edit_message_text(bot: Bot, tg: FakeTelegram) -> None:
    sent = await bot.send_message(USER, "<b>v1</b>", parse_mode="HTML", reply_markup=keyboard("a"))
    with pytest.raises(BadRequest, match=api_error("message is not modified")):
        await bot.edit_message_text(
            "<b>v1</b>", USER, sent.message_id, parse_mode="HTML", reply_markup=keyboard("a")
        )
    # Same text without the markup is a change: Telegram removes the keyboard.
    edited = await bot.edit_message_text("<b>v1</b>", USER, sent.message_id, parse_mode="HTML")
    assert edited.reply_markup is None and edited.edit_date is not None
    assert "reply_markup" not in tg.get_message(USER, sent.message_id)
    with pytest.raises(BadRequest, match=api_error("message is not modified")):
        await bot.edit_message_reply_markup(USER, sent.message_id)
    await bot.edit_message_reply_markup(USER, sent.message_id, reply_markup=keyboard("b"))
    with pytest.raises(BadRequest, match=api_error("message to edit not found")):
        await bot.edit_message_text("x", USER, 999)
    user_message = tg.make_message_update("mine", user_id=USER)["message"]
    with pytest.raises(BadRequest, match=api_error("message can't be edited")):
        await bot.edit_message_text("x", USER, user_message["message_id"])
    assert [m["text"] for m in tg.edited_messages(USER)] == ["v1", "v1"]


# --------------------------------------------------------------------------------- getUpdates


async def test_get_updates_long_poll_and_offset(bot: Bot, tg: FakeTelegram) -> None:
    async def later() -> None:
        await asyncio.sleep(0.2)
        tg.message("/start", user_id=USER)

    started = time.monotonic()
    task = asyncio.create_task(later())
    updates = await bot.get_updates(timeout=5)
    await task
    assert time.monotonic() - started < 2
    [update] = updates
    assert update.message.text == "/start" and update.message.entities[0].type == "bot_command"
    assert await bot.get_updates() == updates  # not confirmed yet
    started = time.monotonic()
    assert await bot.get_updates(offset=update.update_id + 1, timeout=dtm.timedelta(seconds=0.3)) == ()
    assert 0.25 < time.monotonic() - started < 2
    assert tg.pending_updates == [] and tg.confirmed_offset == update.update_id + 1


async def test_allowed_updates_filter(bot: Bot, tg: FakeTelegram) -> None:
    tg.inline_query("abc", user_id=USER)
    tg.message("hello", user_id=USER)
    [update] = await bot.get_updates(allowed_updates=["message"])
    assert update.message.text == "hello"
    assert await bot.get_updates() == (update,)  # the setting sticks; the inline query is gone


async def test_second_poller_terminates_the_first(tg: FakeTelegram) -> None:
    async with Bot(TOKEN, base_url=tg.api_url) as one, Bot(TOKEN, base_url=tg.api_url) as two:
        first = asyncio.create_task(one.get_updates(timeout=3))
        await tg.wait_for("getUpdates")
        second = asyncio.create_task(two.get_updates(timeout=dtm.timedelta(seconds=0.3)))
        with pytest.raises(Conflict, match=api_error("terminated by other getUpdates")):
            await first
        assert await second == ()


async def test_webhook_conflicts_with_get_updates(bot: Bot, tg: FakeTelegram) -> None:
    tg.message("pending", user_id=USER)
    assert await bot.set_webhook("https://bot.example.com/hook", secret_token="s3cret_-X", max_connections=5)
    assert tg.webhook["secret_token"] == "s3cret_-X"
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count, info.max_connections) == (
        "https://bot.example.com/hook",
        1,
        5,
    )
    with pytest.raises(Conflict, match=api_error("webhook is active")):
        await bot.get_updates()
    with pytest.raises(BadRequest, match=api_error("secret token")):
        await bot.set_webhook("https://bot.example.com/hook", secret_token="not allowed!")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert tg.webhook["url"] == "" and await bot.get_updates() == ()


# ---------------------------------------------------------------------------- failure injection


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # int retry_after
async def test_flood_control_injection(bot: Bot, tg: FakeTelegram) -> None:
    tg.fail_next("sendMessage", status=429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "hi")
    assert caught.value.retry_after in (3, dtm.timedelta(seconds=3))
    await bot.send_message(USER, "hi")
    assert tg.injected[0].description == "Too Many Requests: retry after 3"
    assert tg.errors == [] and len(tg.sent_messages()) == 1


async def test_server_error_and_delay_injection(bot: Bot, tg: FakeTelegram) -> None:
    tg.fail_next("*", status=502)
    with pytest.raises(NetworkError, match=api_error("Bad Gateway")) as caught:
        await bot.send_message(USER, "hi")
    assert not isinstance(caught.value, BadRequest)
    tg.delay_next("sendMessage", 0.3)
    started = time.monotonic()
    await bot.send_message(USER, "slow")
    assert time.monotonic() - started >= 0.3


async def send_raw(client: httpx.AsyncClient, tg: FakeTelegram, chat_id: int, text: str = "hi") -> int | str:
    """POST sendMessage; the HTTP status, or "dropped" when the connection closed without an answer."""
    try:
        url = f"{tg.api_url}{TOKEN}/sendMessage"
        response = await client.post(url, json={"chat_id": chat_id, "text": text})
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return "dropped"
    return response.status_code


async def test_random_faults_are_seeded_and_spare_the_exempt_methods(tg: FakeTelegram) -> None:
    async def outcomes() -> list[int | str]:
        async with httpx.AsyncClient() as client:
            found = [await send_raw(client, tg, USER, f"m{i}") for i in range(40)]
            me = await client.post(f"{tg.api_url}{TOKEN}/getMe")
        assert me.status_code == 200  # getMe is exempt
        return found

    mix = tg.set_faults(server_error=0.3, drop=0.2, seed=7)
    assert mix is not None and mix.drop_mode == "before"
    first = await outcomes()
    tg.set_faults(mix)  # the same seed again: the same faults
    second = await outcomes()
    assert first == second
    assert set(first) == {200, 502, "dropped"} and 10 <= first.count(200) <= 30
    assert len(tg.sent_messages(USER)) == 2 * first.count(200)  # nothing faulted was sent
    descriptions = [i.description for i in tg.injected]
    assert descriptions.count("Bad Gateway") == 2 * first.count(502)
    assert descriptions.count("connection dropped before sendMessage was carried out") == 2 * first.count(
        "dropped"
    )
    assert tg.errors == []
    tg.set_faults(None)
    async with httpx.AsyncClient() as client:
        assert [await send_raw(client, tg, USER) for _ in range(5)] == [200] * 5


async def test_a_drop_before_sends_nothing_and_a_drop_after_sends(bot: Bot, tg: FakeTelegram) -> None:
    tg.set_faults(drop=1.0, drop_mode="before")
    with pytest.raises(NetworkError):  # PTB: "Server disconnected without sending a response"
        await bot.send_message(USER, "before")
    assert tg.sent_messages() == []
    tg.set_faults(drop=1.0, drop_mode="after")
    async with httpx.AsyncClient() as client:
        assert await send_raw(client, tg, USER, "after") == "dropped"
    [sent] = tg.sent_messages(USER)
    assert sent["text"] == "after" and tg.get_message(USER, sent["message_id"]) is not None
    assert [i.description for i in tg.injected] == [
        "connection dropped before sendMessage was carried out",
        "connection dropped after sendMessage was carried out",
    ]
    with pytest.raises(ValueError, match="drop_mode"):
        tg.set_faults(drop=0.5, drop_mode="sometimes")


async def test_a_drop_still_closes_the_connection_without_logging_when_uvicorn_is_not_reachable(
    tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tg, "_find_protocol", lambda request: None)  # the headers-then-raise fallback
    tg.set_faults(drop=1.0, drop_mode="after")
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
            await client.post(f"{tg.api_url}{TOKEN}/sendMessage", json={"chat_id": USER, "text": "x"})
    assert len(tg.sent_messages(USER)) == 1
    assert "Exception in ASGI application" not in caplog.text


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # int retry_after
async def test_flood_control_limits_private_chats_groups_and_the_total(bot: Bot, tg: FakeTelegram) -> None:
    tg.enforce_flood_control()
    await bot.send_message(USER, "one")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "two")
    retry_after = caught.value.retry_after
    seconds = retry_after.total_seconds() if isinstance(retry_after, dtm.timedelta) else retry_after
    assert seconds >= 1
    assert tg.injected[-1].description == f"Too Many Requests: retry after {int(seconds)}"
    assert [m["text"] for m in tg.sent_messages(USER)] == ["one"]  # the refused one was not sent
    await asyncio.sleep(seconds)
    await bot.send_message(USER, "two")

    group = tg.add_chat(-100, "group")["id"]
    tg.enforce_flood_control(group_per_min=3)
    for i in range(3):
        await bot.send_message(group, f"g{i}")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(group, "g3")
    retry_after = caught.value.retry_after
    assert (retry_after.total_seconds() if isinstance(retry_after, dtm.timedelta) else retry_after) >= 59

    tg.enforce_flood_control(overall_per_s=3)
    chats = [tg.add_chat(900 + i)["id"] for i in range(4)]
    async with httpx.AsyncClient() as client:
        statuses = [await send_raw(client, tg, chat) for chat in chats]
        edit = await client.post(
            f"{tg.api_url}{TOKEN}/editMessageText", json={"inline_message_id": "abc", "text": "edited"}
        )
    assert statuses == [200, 200, 200, 429]
    assert tg.flood_refusals == {"private": 1, "group": 1, "overall": 2}
    assert edit.status_code == 429 and edit.json()["parameters"]["retry_after"] == 1
    tg.lift_flood_control()
    assert await bot.send_message(chats[-1], "free again")


async def test_flood_control_from_the_constructor() -> None:
    async with FakeTelegram(token=TOKEN, flood_control=True) as fake:
        fake.add_chat(USER)
        async with httpx.AsyncClient() as client:
            assert [await send_raw(client, fake, USER) for _ in range(2)] == [200, 429]


async def test_an_outage_fails_its_methods_until_it_ends(bot: Bot, tg: FakeTelegram) -> None:
    tg.outage(0.3)
    async with httpx.AsyncClient() as client:
        assert await send_raw(client, tg, USER) == 502
        assert 0 < tg.outage_remaining("sendMessage") <= 0.3
        await bot.send_chat_action(USER, "typing")  # other methods are not affected
        await asyncio.sleep(0.35)
        assert await send_raw(client, tg, USER) == 200
        tg.outage(30, kind="drop")
        assert await send_raw(client, tg, USER) == "dropped"
        tg.end_outage()
        assert tg.outage_remaining() == 0
        assert await send_raw(client, tg, USER) == 200
        tg.outage(30, methods=["sendMessage", "sendChatAction"], kind="503")
        assert await send_raw(client, tg, USER) == 503
        tg.clear_faults()
        assert await send_raw(client, tg, USER) == 200
    assert len(tg.sent_messages(USER)) == 3
    assert [i.description for i in tg.injected] == [
        "Bad Gateway",
        "connection dropped before sendMessage was carried out",
        "Service Unavailable",
    ]
    with pytest.raises(ValueError, match="kind"):
        tg.outage(1, kind="404")


# ------------------------------------------------------------------------- callbacks and inline


async def test_callback_query_roundtrip(bot: Bot, tg: FakeTelegram) -> None:
    sent = await bot.send_message(USER, "pick", reply_markup=keyboard("yes", "no"))
    with pytest.raises(ValueError, match="no button"):
        tg.callback_query(sent.to_dict(), "maybe")
    tg.callback_query(tg.last_sent_message(USER), "yes", user_id=USER)
    [update] = await bot.get_updates()
    assert update.callback_query.data == "yes" and update.callback_query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(update.callback_query.id, text="ok")
    with pytest.raises(BadRequest, match=api_error("query is too old")):
        await bot.answer_callback_query(update.callback_query.id)
    assert tg.callback_answers[0]["text"] == "ok"


async def test_answer_inline_query_limits(bot: Bot, tg: FakeTelegram) -> None:
    def article(i: object, text: str = "body") -> InlineQueryResultArticle:
        return InlineQueryResultArticle(
            str(i), f"title {i}", InputTextMessageContent(text, parse_mode="HTML")
        )

    query_id = tg.inline_query("q", user_id=USER)["inline_query"]["id"]
    bad_answers = {
        "RESULTS_TOO_MUCH": [article(i) for i in range(51)],
        "RESULT_ID_DUPLICATE": [article(1), article(1)],
        "RESULT_ID_INVALID": [article("x" * 65)],
        "MESSAGE_TOO_LONG": [article(1, "a" * 4097)],
        "Can't parse entities": [article(1, "<b>oops")],
    }
    for error, results in bad_answers.items():
        with pytest.raises(BadRequest, match=api_error(error)):
            await bot.answer_inline_query(query_id, results, cache_time=5)
    assert await bot.answer_inline_query(
        query_id, [article(i) for i in range(50)], cache_time=5, is_personal=True
    )
    with pytest.raises(BadRequest, match=api_error("query is too old")):
        await bot.answer_inline_query(query_id, [])
    [answer] = tg.inline_answers
    assert answer["cache_time"] == 5 and len(answer["results"]) == 50 and answer["is_personal"] is True


async def test_commands_and_chat_actions(bot: Bot, tg: FakeTelegram) -> None:
    await bot.set_my_commands([BotCommand("ask", "Ask a question"), BotCommand("help", "Help")])
    assert [c.command for c in await bot.get_my_commands()] == ["ask", "help"]
    assert tg.commands[0] == {"command": "ask", "description": "Ask a question"}
    with pytest.raises(BadRequest, match=api_error("BOT_COMMAND_INVALID")):
        await bot.set_my_commands([BotCommand("Ask", "x")])
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    await bot.send_chat_action(USER, "typing")
    with pytest.raises(BadRequest, match=api_error("wrong parameter action")):
        await bot.send_chat_action(USER, "dancing")
    assert tg.chat_actions == [{"chat_id": USER, "action": "typing"}]


# ------------------------------------------------------------------------------- test controls


async def test_wait_for_reports_what_arrived(bot: Bot, tg: FakeTelegram) -> None:
    await bot.send_message(USER, "one")
    calls = await tg.wait_for("sendmessage", predicate=lambda p: p["text"] == "one")
    assert calls[0].params["chat_id"] == USER
    with pytest.raises(AssertionError, match=r"(?s)waiting for 2 sendMessage.*sendMessage\(chat_id=4242"):
        await tg.wait_for("sendMessage", count=2, timeout=0.1)


def test_background_thread_mode() -> None:
    with FakeTelegram(token=TOKEN) as tg:
        tg.add_chat(USER)
        url = f"{tg.api_url}{TOKEN}/sendMessage"
        with httpx.Client() as client:
            assert client.post(url, data={"chat_id": USER, "text": "from a thread"}).json()["ok"]
        [call] = tg.wait_for_blocking("sendMessage", timeout=2)
        assert call.params["text"] == "from a thread"
    assert tg.sent_messages(USER)[0]["text"] == "from a thread"


async def test_application_polling_end_to_end(tg: FakeTelegram) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None and update.effective_user is not None
        await update.effective_message.reply_html(
            f"<b>Hi</b> {update.effective_user.first_name}", reply_markup=keyboard("more")
        )

    async def more(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        await update.callback_query.answer()
        await update.callback_query.edit_message_text("More!")

    app = ApplicationBuilder().token(TOKEN).base_url(tg.api_url).base_file_url(tg.file_url).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(more))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1, allowed_updates=Update.ALL_TYPES)
        update = tg.message("/start", user_id=7, first_name="Ann")
        [reply] = await tg.wait_for_sent(chat_id=7)
        tg.callback_query(reply, "more", user_id=7)
        await tg.wait_for("editMessageText")
        await app.updater.stop()
        await app.stop()
    assert reply["text"] == "Hi Ann" and reply["entities"] == [{"offset": 0, "length": 2, "type": "bold"}]
    assert tg.get_message(7, reply["message_id"])["text"] == "More!"
    assert len(tg.callback_answers) == 1
    assert tg.confirmed_offset > update["update_id"]
    tg.assert_no_errors()


# ------------------------------------------------------------------------------ parsers directly


def test_parse_html_details() -> None:
    assert parse_html("<b>a&#128512;b</b>") == ("a😀b", [{"offset": 0, "length": 4, "type": "bold"}])
    text, [mention] = parse_html('<a href="tg://user?id=42">you</a>')
    assert (text, mention["type"], mention["user"]["id"]) == ("you", "text_mention", 42)
    assert parse_html("<pre>x</pre>")[1] == [{"offset": 0, "length": 1, "type": "pre"}]
    assert parse_html("<code><b>x</b></code>")[1] == [{"offset": 0, "length": 1, "type": "code"}]
    assert parse_html("AT&T", strict_ampersand=False) == ("AT&T", [])
    assert parse_html('<a href="ftp://x">y</a>') == ("y", [])  # unusable links are dropped silently
    assert utf16_len("😀a") == 3


def test_parse_markdown_v2_blockquotes() -> None:
    text, entities = parse_markdown_v2(">quoted\n>lines\nafter")
    assert text == "quoted\nlines\nafter"
    assert entities == [{"offset": 0, "length": 12, "type": "blockquote"}]
    text, entities = parse_markdown_v2("**>hidden\n>more||\nafter")
    assert text == "hidden\nmore\nafter" and entities[0]["type"] == "expandable_blockquote"

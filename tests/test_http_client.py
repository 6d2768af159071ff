"""The Bot API client on aiohttp, over real HTTP against the fake Bot API: what it sends, and how each way
of failing is reported (and whether it may be retried)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, NetworkError, TimedOut

from bot.http_client import AiohttpRequest, never_sent
from tests.fake_telegram import DEFAULT_TOKEN, DEFAULT_USER_ID, FakeTelegram, UploadedFile

TOKEN = DEFAULT_TOKEN
USER = DEFAULT_USER_ID


def fake() -> FakeTelegram:
    return FakeTelegram(token=TOKEN, strict_chats=False)  # any chat id is a chat


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_parameters_go_out_as_typed_json_and_the_answer_comes_back():
    async with fake() as tg:
        async with Bot(TOKEN, base_url=tg.api_url, request=AiohttpRequest()) as bot:
            keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("More »", callback_data="p:1")]])
            sent = await bot.send_message(USER, "<b>héllo</b> 🌍", parse_mode="HTML", reply_markup=keyboard)
            assert sent.text == "héllo 🌍"
            [call] = [c for c in tg.calls if c.method == "sendMessage"]
            assert call.params["chat_id"] == USER  # a number, not the string "…": one JSON object
            assert call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "p:1"
            assert (await bot.get_me()).username
        tg.assert_no_errors()


async def test_a_file_goes_out_as_multipart_form_data():
    received: dict[str, Any] = {}

    def send_document(params: dict[str, Any]) -> dict[str, Any]:
        received.update(params)
        chat = {"id": int(params["chat_id"]), "type": "private", "first_name": "Test"}
        return {"message_id": 7, "date": 0, "chat": chat,
                "document": {"file_id": "f1", "file_unique_id": "u1", "file_name": "notes.txt"}}

    async with fake() as tg:
        tg.register_method("sendDocument", send_document)
        async with Bot(TOKEN, base_url=tg.api_url, request=AiohttpRequest()) as bot:
            message = await bot.send_document(USER, b"line one\nline two\n", filename="notes.txt",
                                              caption="the notes")
    assert message.document is not None and message.document.file_name == "notes.txt"
    upload = received["document"]
    assert isinstance(upload, UploadedFile)
    assert upload.filename == "notes.txt" and upload.data == b"line one\nline two\n"
    assert received["caption"] == "the notes"


async def test_an_error_answer_reaches_python_telegram_bot_as_its_error():
    request = AiohttpRequest()
    async with fake() as tg, Bot(TOKEN, base_url=tg.api_url, request=request) as bot:
        with pytest.raises(BadRequest, match=r"(?i)text is empty"):
            await bot.send_message(USER, "")


async def test_a_refused_connection_was_never_sent_and_does_not_show_the_token():
    request = AiohttpRequest(connect_timeout=2)
    async with request:
        url = f"http://127.0.0.1:{closed_port()}/bot{TOKEN}/sendMessage"
        with pytest.raises(NetworkError) as caught:
            await request.post(url, None)
    assert not isinstance(caught.value, TimedOut)
    assert never_sent(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN.split(":")[1] not in str(caught.value)


async def test_a_slow_answer_times_out_and_may_have_been_delivered():
    request = AiohttpRequest(read_timeout=0.2)
    async with fake() as tg, Bot(TOKEN, base_url=tg.api_url, request=request) as bot:
        tg.delay_next("sendMessage", 1.0)
        with pytest.raises(TimedOut) as caught:
            await bot.send_message(USER, "slow")
        assert not never_sent(caught.value)  # the fake got it: retrying could answer twice
        assert (await bot.send_message(USER, "next")).text == "next"  # the client is still usable


async def test_waiting_too_long_for_a_free_connection_was_never_sent():
    async with fake() as tg:
        # aiohttp bounds waiting for a connection and opening one together: connect + pool = 0.2 s
        request = AiohttpRequest(connection_pool_size=1, pool_timeout=0.1, connect_timeout=0.1)
        async with Bot(TOKEN, base_url=tg.api_url, request=request) as bot:
            tg.delay_next("sendMessage", 1.0)
            first = asyncio.ensure_future(bot.send_message(USER, "holds the only connection"))
            await asyncio.sleep(0.2)
            with pytest.raises(TimedOut) as caught:
                await bot.send_message(USER, "waits for it")
            assert never_sent(caught.value)
            assert (await first).text == "holds the only connection"
        sent = [m["text"] for m in tg.sent_messages(USER)]
        assert sent == ["holds the only connection"]


async def test_the_client_must_be_initialized_and_can_be_again_after_shutdown():
    request = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:1/bot/getMe", "POST")
    async with fake() as tg:
        for _ in range(2):
            async with request:
                status, payload = await request.do_request(f"{tg.api_url}{TOKEN}/getMe", "POST")
                assert status == 200 and b'"ok":' in payload.replace(b" ", b"")


def test_the_pool_needs_a_connection():
    with pytest.raises(ValueError, match="connection_pool_size"):
        AiohttpRequest(connection_pool_size=0)


def test_proxies_come_from_the_environment_once_per_host(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    request = AiohttpRequest()
    assert request._proxy_for(f"https://bot-api.example.org/bot{TOKEN}/getMe") == "http://proxy.internal:3128"
    assert request._proxy_for("http://127.0.0.1:8081/bot/getMe") is None  # bypassed, and no HTTP_PROXY
    monkeypatch.delenv("HTTPS_PROXY")
    assert request._proxy_for(f"https://bot-api.example.org/bot{TOKEN}/sendMessage") == "http://proxy.internal:3128"
    assert AiohttpRequest()._proxy_for("https://bot-api.example.org/bot/getMe") is None

"""End-to-end: the real bot (``bot.app.build_application``) against a fake Telegram Bot API over real HTTP.

Each test starts the fake server on 127.0.0.1, points ``telegram.base_url`` at it, runs the bot in polling
mode, delivers updates and asserts on what the bot sent. The fake validates every request like Telegram
(HTML, 4096 UTF-16 units, callback_data, inline results), and ``tg.assert_no_errors()`` runs after each
test, so a reply Telegram would reject fails here.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import Application

from bot.config import Settings
from bot.delivery import DeliveryLimiter
from bot.handlers import SERVICES_KEY
from bot.http_client import AiohttpRequest
from bot.inbox import Inbox
from bot.polling import PollingService
from retrieval import SearchIndex, SearchResult
from tests.conftest import REPO
from tests.fake_telegram import (
    BOT_ID,
    BOT_USERNAME,
    DEFAULT_GROUP_ID,
    DEFAULT_TOKEN,
    DEFAULT_USER_ID,
    FakeTelegram,
    utf16_len,
)
from tests.processes import corpus_bot_run

TOKEN = DEFAULT_TOKEN
USER = DEFAULT_USER_ID
OTHER_USER = 515151
GROUP = DEFAULT_GROUP_ID


# -- harness -------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _token_never_logged(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    yield
    secret = TOKEN.split(":", 1)[1]
    assert secret not in caplog.text
    assert all(secret not in r.getMessage() for r in caplog.records)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as server:
        yield server
        server.assert_no_errors()


def bot_settings(tg: FakeTelegram, **sections: dict[str, Any]) -> Settings:
    """Default settings pointed at the fake, with ``section={key: value}`` overrides.

    The inbox is a fresh file of its own; pacing is off (tests that check it turn it on), so a test
    sending several messages to one chat does not wait a second for each.
    """
    settings = Settings()
    inbox = Path(tempfile.mkdtemp(prefix="corpus-bot-inbox-")) / "inbox.sqlite3"
    changes: dict[str, dict[str, Any]] = {
        "telegram": {"base_url": tg.api_url, "connect_timeout": 5.0, "read_timeout": 5.0},
        "delivery": {"path": inbox, "private_rate": 0.0, "group_rate": 0.0, "overall_rate": 0.0},
    }
    for section, values in sections.items():
        changes.setdefault(section, {}).update(values)
    replaced = {name: dataclasses.replace(getattr(settings, name), **vals) for name, vals in changes.items()}
    return dataclasses.replace(settings, **replaced)


@contextlib.asynccontextmanager
async def running_bot(
    tg: FakeTelegram, index: Any, settings: Settings | None = None, *, typing_after: float | None = None
) -> AsyncIterator[Application]:
    """The bot as ``corpus-bot run`` runs it (:class:`PollingService`), stopped cleanly after."""
    service = PollingService(settings or bot_settings(tg), index, TOKEN, poll_timeout=1)
    application = service.application
    if typing_after is not None:
        application.bot_data[SERVICES_KEY].typing_after = typing_after
    serving = asyncio.create_task(service.serve())
    await until(lambda: application.running or serving.done(), timeout=10)
    if serving.done():
        serving.result()
    try:
        yield application
    finally:
        service.stop()
        await asyncio.wait_for(serving, 30)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (polling every 10 ms) until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.01)


async def ask(
    tg: FakeTelegram, text: str | None = None, *, chat_id: int = USER, timeout: float = 5.0, **kwargs: Any
) -> dict[str, Any]:
    """Send a message to the bot and return its reply to that message."""
    sent_before = len(tg.sent_messages())
    if chat_id < 0:
        kwargs.setdefault("chat_type", "group")
        kwargs["chat_id"] = chat_id
    else:
        kwargs.setdefault("user_id", chat_id)
    question_id = tg.message(text, **kwargs)["message"]["message_id"]
    for count in itertools.count(1):
        for sent in await tg.wait_for_sent(chat_id, count=count, since=sent_before, timeout=timeout):
            if sent.get("reply_to_message", {}).get("message_id", question_id) == question_id:
                return sent  # the reply to this message (private chats: commands are answered unquoted)
    raise AssertionError("unreachable")


async def press(tg: FakeTelegram, message: dict[str, Any], label: str, user_id: int = USER) -> int:
    """Press the button labelled ``label`` on ``message``; returns the index of the press in ``tg.calls``."""
    current = tg.get_message(message["chat"]["id"], message["message_id"])
    [data] = [b["callback_data"] for row in current["reply_markup"]["inline_keyboard"] for b in row
              if b["text"] == label]
    since = len(tg.calls)
    tg.callback_query(current, data, user_id=user_id)
    return since


async def callback_answer(tg: FakeTelegram, since: int) -> dict[str, Any]:
    [call] = await tg.wait_for("answerCallbackQuery", since=since)
    return call.params


def bold(message: dict[str, Any]) -> list[str]:
    return entity_texts(message, "bold")


def entity_texts(message: dict[str, Any], kind: str) -> list[str]:
    encoded = message["text"].encode("utf-16-le")
    return [
        encoded[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le")
        for e in message.get("entities", [])
        if e["type"] == kind
    ]


ORDERS = ["Newest first", "Oldest first", "📈 Timeline"]  # the row under every page of quotes


def labels(message: dict[str, Any]) -> list[str]:
    markup = message.get("reply_markup") or {"inline_keyboard": []}
    return [b["text"] for row in markup["inline_keyboard"] for b in row]


class SlowIndex:
    """A SearchIndex whose searches take ``seconds`` (for the questions ``slow_for`` picks)."""

    def __init__(self, index: SearchIndex, seconds: float, slow_for: str | None = None) -> None:
        self._index, self._seconds, self._slow_for = index, seconds, slow_for

    def search(self, question: str, k: int = 5, offset: int = 0) -> SearchResult:
        if self._slow_for is None or self._slow_for in question:
            time.sleep(self._seconds)
        return self._index.search(question, k, offset)

    def may_take_long(self, question: str) -> bool:
        return self._slow_for is None or self._slow_for in question

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


# -- commands ------------------------------------------------------------------------------------------


async def test_start_help_about_and_the_command_menu(tg, small_index):
    async with running_bot(tg, small_index):
        await tg.wait_for("setMyCommands")
        assert [c["command"] for c in tg.commands] == ["start", "help", "about", "ask", "timeline"]

        welcome = await ask(tg, "/start")
        assert "4 documents" in welcome["text"]
        assert "2019-10-12 to 2022-01-01" in welcome["text"] and "1 without a date" in welcome["text"]
        examples = entity_texts(welcome, "code")
        assert len(examples) == 3
        for example in examples:  # the examples really find something in this corpus
            assert small_index.search(example).hits, example

        help_text = (await ask(tg, "/help"))["text"]
        for piece in ('"basic research"', "-military", "after:2023-01-01", "year:2023", "/ask", "/about"):
            assert piece in help_text

        about = (await ask(tg, "/about"))["text"]
        assert "Documents: 4" in about and "Sentences: 14" in about and "Undated documents: 1" in about

        assert "Search syntax" in (await ask(tg, f"/help@{BOT_USERNAME}"))["text"]
        assert "Search syntax" in (await ask(tg, "/start help"))["text"]  # inline mode's "how to ask" link


# -- questions -----------------------------------------------------------------------------------------


async def test_a_question_gets_quotes_with_date_title_and_bold_words(tg, small_index):
    async with running_bot(tg, small_index):
        reply = await ask(tg, "lighthouse keeper")
    assert reply["text"].startswith("🔎 The one quote for lighthouse keeper")
    assert "1. 📅 2021-03-04 · The Lighthouse Keeper's Log" in reply["text"]
    assert entity_texts(reply, "blockquote") == [
        "The lighthouse keeper counted seventeen ships in the harbour that night."
    ]
    assert "lighthouse keeper" in bold(reply)
    assert labels(reply) == ["Context 1", *ORDERS]


async def test_an_undated_quote_says_so_and_titles_are_shown_literally(tg, small_index):
    async with running_bot(tg, small_index):
        reply = await ask(tg, "submarine cable")
    assert "📅 date unknown · Undated Memo <on cables> & wires" in reply["text"]


async def test_the_shipped_corpus_answers_with_its_date(tg, shipped_index):
    async with running_bot(tg, shipped_index):
        reply = await ask(tg, "basic research China")
    assert "2023-08-05 · Strengthening Basic Research" in reply["text"]
    assert "basic research" in [b.lower() for b in bold(reply)]
    assert labels(reply)[-4:] == ["More »", *ORDERS]


async def test_a_huge_sentence_is_cut_around_the_match_and_fits(tg, small_index):
    async with running_bot(tg, small_index):
        reply = await ask(tg, "zeppelin")
    [quote] = entity_texts(reply, "blockquote")
    assert quote.startswith("…") and quote.endswith("…")
    assert "zeppelin" in bold(reply)
    assert utf16_len(reply["text"]) <= 4096


async def test_a_misspelled_word_finds_what_was_meant_and_says_so(tg, small_index):
    async with running_bot(tg, small_index):
        reply = await ask(tg, "lighthuose")
        nothing = await ask(tg, "zqxvwk")
    assert "lighthouse keeper counted seventeen ships" in reply["text"]
    assert "did you mean lighthouse" in reply["text"]
    assert "No quotes found for zqxvwk" in nothing["text"]
    assert "reply_markup" not in nothing


# -- buttons -------------------------------------------------------------------------------------------


async def test_more_and_back_page_through_the_results_by_editing(tg, small_index):
    async with running_bot(tg, small_index):
        reply = await ask(tg, "harbour")
        assert reply["text"].startswith("🔎 Quotes 1–3 of 7 for harbour")
        assert labels(reply) == ["Context 1", "Context 2", "Context 3", "More »", *ORDERS]

        since = await press(tg, reply, "More »")
        assert (await callback_answer(tg, since)).get("text") is None
        [edit] = await tg.wait_for("editMessageText", since=since)
        page2 = tg.get_message(USER, reply["message_id"])
        assert page2["text"].startswith("🔎 Quotes 4–6 of 7")
        assert labels(page2) == ["Context 4", "Context 5", "Context 6", "« Back", "More »", *ORDERS]

        since = await press(tg, page2, "More »")
        await tg.wait_for("editMessageText", since=since)
        page3 = tg.get_message(USER, reply["message_id"])
        assert page3["text"].startswith("🔎 Quote 7 of 7")
        assert labels(page3) == ["Context 7", "« Back", *ORDERS]

        since = await press(tg, page3, "« Back")
        await tg.wait_for("editMessageText", since=since)
        assert tg.get_message(USER, reply["message_id"])["text"].startswith("🔎 Quotes 4–6 of 7")
    assert edit.params["message_id"] == reply["message_id"]


async def test_context_shows_the_sentences_around_a_quote(tg, small_index):
    async with running_bot(tg, small_index):
        reply = await ask(tg, "lighthouse keeper")
        sent = len(tg.sent_messages())
        since = await press(tg, reply, "Context 1")
        await callback_answer(tg, since)
        [context] = await tg.wait_for_sent(USER, since=sent)
        assert context["reply_to_message"]["message_id"] == reply["message_id"]
        assert context["text"].startswith("📖 Context: 📅 2021-03-04 · The Lighthouse Keeper's Log")
        [quote] = entity_texts(context, "blockquote")
        assert quote.startswith("The lighthouse keeper counted")
        assert "Storms had kept the fishing fleet at anchor for a week." in quote
        assert bold(context) == ["The lighthouse keeper counted seventeen ships in the harbour that night."]

        since = await press(tg, context, "More context")
        await tg.wait_for("editMessageText", since=since)
        wider = tg.get_message(USER, context["message_id"])
        assert "Children watched the harbour from the hill." in wider["text"]


async def test_a_reply_that_can_no_longer_be_edited_gets_the_page_below_it(tg, small_index):
    async with running_bot(tg, small_index):
        reply = await ask(tg, "harbour")
        tg.fail_next("editMessageText", status=400, description="Bad Request: message can't be edited")
        sent = len(tg.sent_messages())
        await press(tg, reply, "More »")
        [page2] = await tg.wait_for_sent(USER, since=sent)
    assert page2["text"].startswith("🔎 Quotes 4–6 of 7")
    assert page2["reply_to_message"]["message_id"] == reply["message_id"]


async def test_buttons_keep_working_after_a_restart(tg, small_index):
    async with running_bot(tg, small_index):
        reply = await ask(tg, "harbour")
        long_question = "harbour " + "wall crane hill tar rope gulls boat " * 3
        long_reply = await ask(tg, long_question)
    assert long_question.strip() not in str(long_reply["reply_markup"])  # too long for callback_data

    async with running_bot(tg, small_index):  # a new process: nothing kept in memory
        since = await press(tg, reply, "More »")
        await tg.wait_for("editMessageText", since=since)
        assert tg.get_message(USER, reply["message_id"])["text"].startswith("🔎 Quotes 4–6 of 7 for harbour")

        since = await press(tg, long_reply, "More »")  # the question is read back from the message replied to
        await tg.wait_for("editMessageText", since=since)
        assert tg.get_message(USER, long_reply["message_id"])["text"].startswith("🔎 Quotes 4–6")

        sent = len(tg.sent_messages())
        since = await press(tg, reply, "Context 4")  # now on page 2
        await callback_answer(tg, since)
        assert (await tg.wait_for_sent(USER, since=sent))[0]["text"].startswith("📖 Context")


async def test_stale_and_foreign_buttons_get_a_polite_answer(tg, small_index, shipped_index):
    async with running_bot(tg, small_index):
        reply = await ask(tg, "harbour")
        long_reply = await ask(tg, "harbour " + "wall crane hill tar rope gulls boat " * 3)

    async with running_bot(tg, shipped_index):  # the corpus changed: sentence ids mean something else now
        since = await press(tg, reply, "Context 1")
        assert "corpus has changed" in (await callback_answer(tg, since))["text"]

        for data in ["no-such-button", "c|0000|x|2", "m|99999|harbour", ""]:
            since = len(tg.calls)
            tg.callback_query(reply, data, check=False)
            answer = await callback_answer(tg, since)
            assert answer.get("text"), data

        # A long question whose message lost the question it answered: nothing to page through.
        orphan = copy.deepcopy(tg.get_message(USER, long_reply["message_id"]))
        orphan.pop("reply_to_message")
        [data] = [b["callback_data"] for row in orphan["reply_markup"]["inline_keyboard"] for b in row
                  if b["text"] == "More »"]
        since = len(tg.calls)
        update = tg.make_callback_query_update(orphan, data)
        update["callback_query"]["message"] = orphan
        tg.queue(update)
        assert "ask your question again" in (await callback_answer(tg, since))["text"]
    assert not tg.edited_messages()


# -- inline mode ---------------------------------------------------------------------------------------


async def test_inline_mode_offers_quotes_with_date_and_title(tg, small_index):
    settings = bot_settings(tg, replies={"inline_results": 3})
    async with running_bot(tg, small_index, settings):
        tg.inline_query("harbour")
        [call] = await tg.wait_for("answerInlineQuery")
        answer = call.params
        assert answer["cache_time"] == 300
        assert len(answer["results"]) == 3 and answer["next_offset"] == "3"
        first = answer["results"][0]
        assert first["title"].startswith("2021-03-04 · The Lighthouse Keeper's Log")
        assert "harbour" in first["description"]
        assert "<blockquote>" in first["input_message_content"]["message_text"]

        since = len(tg.calls)
        tg.inline_query("harbour", offset="6")
        [call] = await tg.wait_for("answerInlineQuery", since=since)
        assert len(call.params["results"]) == 1 and not call.params.get("next_offset")

        for query in ["", "qwertyuiop", "the of"]:
            since = len(tg.calls)
            tg.inline_query(query)
            [call] = await tg.wait_for("answerInlineQuery", since=since)
            assert call.params["results"] == [] and call.params["button"]["start_parameter"] == "help"


# -- groups --------------------------------------------------------------------------------------------


async def test_groups_answer_ask_mentions_and_replies_and_ignore_chatter(tg, small_index):
    async with running_bot(tg, small_index):
        tg.message("who is bringing the cake tomorrow?", chat_id=GROUP, chat_type="group")
        tg.message("/help@some_other_bot", chat_id=GROUP, chat_type="group")

        by_ask = await ask(tg, "/ask lighthouse keeper", chat_id=GROUP)
        assert "2021-03-04" in by_ask["text"]
        by_ask_at = await ask(tg, f"/ask@{BOT_USERNAME} apples", chat_id=GROUP)
        assert "2019-10-12" in by_ask_at["text"]
        by_mention = await ask(tg, f"@{BOT_USERNAME} submarine cable", chat_id=GROUP)
        assert "date unknown" in by_mention["text"]
        by_reply = await ask(tg, "and the cider press?", chat_id=GROUP, reply_to_bot_message=by_ask)
        assert "cider press" in by_reply["text"].lower()
        empty_ask = await ask(tg, "/ask", chat_id=GROUP)
        assert "after the command" in empty_ask["text"]
        assert "Search syntax" in (await ask(tg, f"/help@{BOT_USERNAME}", chat_id=GROUP))["text"]

        # Paging works in groups too, and the question is read back from the /ask message.
        since = await press(tg, (await ask(tg, "/ask harbour", chat_id=GROUP)), "More »", user_id=OTHER_USER)
        await tg.wait_for("editMessageText", since=since)

    replied_to = {m.get("reply_to_message", {}).get("text") for m in tg.sent_messages(GROUP)}
    assert "who is bringing the cake tomorrow?" not in replied_to
    assert "/help@some_other_bot" not in replied_to
    assert len(tg.sent_messages(GROUP)) == 7


# -- bad input -----------------------------------------------------------------------------------------


BAD_INPUTS = [
    ("the of and", "only very common words"),
    ("?!… ¿¡ ...", "no words to search for"),
    ("😀🎉👍🏽", "no words to search for"),
    ("x" * 4000, "at most 1,000"),
    ("<b>harbour</b> & <i>", "Quotes 1–3 of 7"),
    ("*harbour* _crane_ `code` [link](http://example.org)", "harbour"),
    ("מגדלור harbour \u202eevil", "harbour"),
    ("har\u200bbour", "Quotes 1–3 of 7 for harbour"),
    ("\u200b\u200d\u200f", "Send me a question"),
    ("after:2023-13-45 harbour", "not a valid date"),
    ("/unknowncommand", "I don't know that command"),
]


async def test_bad_input_gets_a_sensible_reply_never_an_error(tg, small_index, caplog):
    async with running_bot(tg, small_index):
        for text, expected in BAD_INPUTS:
            reply = await ask(tg, text)
            assert expected in reply["text"], (text, reply["text"])

        sent = len(tg.sent_messages())
        for update in (tg.make_sticker_update(), tg.make_photo_update(caption="harbour")):
            tg.queue(update)
            [reply] = await tg.wait_for_sent(USER, since=sent)
            assert "I can only read text" in reply["text"]
            sent += 1

        bot_user = {"id": BOT_ID, "is_bot": True, "first_name": "Corpus Bot", "username": BOT_USERNAME}
        tg.message("harbour — a quote shared from inline mode", via_bot=bot_user)  # not a question
        question = tg.message("harbour")
        await tg.wait_for_sent(USER, since=sent)
        tg.edited_message(question["message"], "lighthouse")  # an edit is not a new question
        await ask(tg, "/about")
    assert len(tg.sent_messages(USER)) == len(BAD_INPUTS) + 4
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_flood_protection_per_user(tg, small_index):
    settings = bot_settings(tg, limits={"questions_per_minute": 2})
    async with running_bot(tg, small_index, settings):
        for _ in range(2):
            assert "Quotes" in (await ask(tg, "harbour"))["text"]
        assert "faster than I can read" in (await ask(tg, "harbour"))["text"]
        tg.message("harbour")  # refused again: silently this time
        assert "Quotes" in (await ask(tg, "harbour", chat_id=OTHER_USER))["text"]  # others are not affected
        await asyncio.sleep(0.3)
    assert len(tg.sent_messages(USER)) == 3


async def test_context_presses_count_against_the_question_limit(tg, small_index):
    settings = bot_settings(tg, limits={"questions_per_minute": 5})
    async with running_bot(tg, small_index, settings):
        reply = await ask(tg, "harbour")  # 1 of 5
        sent = len(tg.sent_messages(USER))
        since = len(tg.calls)
        for _ in range(40):
            await press(tg, reply, "Context 1")
        answers = [call.params for call in await tg.wait_for("answerCallbackQuery", count=40, since=since)]
        await asyncio.sleep(0.3)
        assert len(tg.sent_messages(USER)) == sent + 4  # 4 new context messages, no more
        told = [a["text"] for a in answers if a.get("text")]
        assert len(told) == 1 and "faster than I can read" in told[0]  # one notice for the whole streak
        assert len(answers) == 40  # every press answered: no button keeps spinning

        # the same budget: a question now is refused too (silently, the user was told), and so is "More »"
        tg.message("harbour")
        since = await press(tg, reply, "More »")
        assert not (await callback_answer(tg, since)).get("text")
        await asyncio.sleep(0.3)
        assert len(tg.sent_messages(USER)) == sent + 4
        assert not tg.edited_messages()


async def test_forged_numbers_get_a_polite_answer_never_a_traceback(tg, small_index, caplog):
    settings = bot_settings(tg, replies={"inline_results": 3})
    async with running_bot(tg, small_index, settings):
        for offset in ["²", "١", "3²", "+3", " 3", "-3", "9" * 30, "1001"]:
            since = len(tg.calls)
            tg.inline_query("harbour", offset=offset)
            [call] = await tg.wait_for("answerInlineQuery", since=since)
            assert call.params["results"] == [], offset
        since = len(tg.calls)
        tg.inline_query("harbour", offset="3")  # a real offset still pages
        [call] = await tg.wait_for("answerInlineQuery", since=since)
        assert len(call.params["results"]) == 3

        reply = await ask(tg, "harbour")
        [context_data] = [b["callback_data"] for row in reply["reply_markup"]["inline_keyboard"] for b in row
                          if b["text"] == "Context 1"]
        _, fingerprint, sentence_id, radius = context_data.split("|")
        for data in ["m|²|harbour", "m|١|harbour", f"c|{fingerprint}|²|{radius}",
                     f"c|{fingerprint}|{sentence_id}|٢", f"x|{fingerprint}|{'9' * 40}|{radius}"]:
            since = len(tg.calls)
            tg.callback_query(reply, data, check=False)
            assert "ask your question again" in (await callback_answer(tg, since))["text"], data
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not tg.edited_messages()


# -- slowness ------------------------------------------------------------------------------------------


async def test_a_slow_search_shows_typing(tg, small_index):
    async with running_bot(tg, SlowIndex(small_index, 0.5), typing_after=0.1):
        await ask(tg, "harbour")
    assert {"chat_id": USER, "action": "typing"}.items() <= tg.chat_actions[0].items()


async def test_one_slow_search_does_not_hold_up_other_chats(tg, small_index):
    async with running_bot(tg, SlowIndex(small_index, 1.0, slow_for="cider")):
        tg.message("cider press", user_id=USER)
        await tg.wait_for("getUpdates", count=2)
        fast = await ask(tg, "harbour", chat_id=OTHER_USER)
        assert not tg.sent_messages(USER)  # the slow one is still searching
        slow = await tg.wait_for_sent(USER, timeout=5)
    assert "harbour" in fast["text"] and "cider" in slow[0]["text"].lower()


# -- Telegram failures ---------------------------------------------------------------------------------


async def test_flood_control_429_is_waited_out_and_answered_once(tg, small_index):
    async with running_bot(tg, small_index):
        tg.fail_next("sendMessage", status=429, retry_after=1)
        started = time.monotonic()
        reply = await ask(tg, "harbour")
        assert time.monotonic() - started >= 1
        await asyncio.sleep(0.2)
    assert "Quotes 1–3" in reply["text"]
    assert len(tg.injected) == 1 and len(tg.sent_messages(USER)) == 1


async def test_server_errors_are_retried_and_answered_once(tg, small_index):
    async with running_bot(tg, small_index):
        tg.fail_next("sendMessage", status=502)
        tg.fail_next("answerCallbackQuery", status=500)
        reply = await ask(tg, "harbour")
        since = await press(tg, reply, "More »")
        await tg.wait_for("editMessageText", since=since)

        tg.fail_next("getUpdates", status=500)  # polling backs off and carries on
        assert "The one quote" in (await ask(tg, "apples"))["text"]
    assert len(tg.injected) == 3
    assert len(tg.sent_messages(USER)) == 2


async def test_a_read_timeout_is_sent_again_so_the_question_is_answered(tg, small_index, caplog):
    # The fake carries out the late call anyway, as Telegram may: the policy is at-least-once, a
    # duplicate over a lost answer (README, "Delivery").
    settings = bot_settings(tg, telegram={"read_timeout": 0.5})
    async with running_bot(tg, small_index, settings):
        tg.delay_next("sendMessage", 1.0)
        sent_calls = len(tg.calls)
        tg.message("harbour")
        await tg.wait_for_sent(USER, count=2, timeout=10)
        assert "apples" in (await ask(tg, "apples"))["text"]
    assert len([c for c in tg.calls[sent_calls:] if c.method == "sendMessage"]) == 3
    assert any("no answer in time" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


async def test_retries_back_off_and_go_on_past_a_few_failures():
    limiter = DeliveryLimiter(retry_for=60)
    attempts: list[int] = []

    async def send() -> bool:
        attempts.append(1)
        if len(attempts) < 5:
            raise NetworkError("Bad Gateway")
        return True

    started = time.monotonic()
    assert await limiter.process_request(send, (), {}, "sendMessage", {"chat_id": USER}, None)
    assert len(attempts) == 5 and limiter.counts["retry_server"] == 4
    assert time.monotonic() - started >= (0.5 + 1 + 2 + 4) / 2  # doubling backoff, jitter >= half of it


async def test_retries_stop_after_retry_for_and_the_update_is_given_up(tg, small_index, caplog):
    settings = bot_settings(tg, delivery={"retry_for": 2.0})
    async with running_bot(tg, small_index, settings) as application:
        tg.fail_next("sendMessage", status=502, times=100)
        tg.message("harbour")
        processor = application.update_processor
        await until(lambda: processor.counts["given_up"] == 1, timeout=10)
    assert not tg.sent_messages(USER)
    assert any("given up" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_lost_connections_and_timeouts_are_retried_bad_requests_are_not():
    limiter = DeliveryLimiter(retry_for=30)
    attempts: list[str] = []

    async def flaky(failure: Exception) -> bool:
        attempts.append("try")
        if len(attempts) == 1:
            raise failure
        return True

    async def failure_of(request: AiohttpRequest, url: str) -> NetworkError:
        async with request:
            try:
                await request.post(url, None)
            except NetworkError as error:
                return error
        raise AssertionError("the call did not fail")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    refused = await failure_of(AiohttpRequest(), f"http://127.0.0.1:{closed}/bot{TOKEN}/sendMessage")
    assert await limiter.process_request(flaky, (refused,), {}, "sendMessage", {"chat_id": 1}, None)
    assert len(attempts) == 2 and limiter.counts["retry_network"] == 1

    attempts.clear()
    async with FakeTelegram(token=TOKEN) as tg:
        tg.delay_next("sendMessage", 1.0)
        read_timeout = await failure_of(AiohttpRequest(read_timeout=0.1),
                                        f"{tg.api_url}{TOKEN}/sendMessage")
    assert isinstance(read_timeout, TimedOut)
    assert await limiter.process_request(flaky, (read_timeout,), {}, "sendMessage", {"chat_id": 1}, None)
    assert len(attempts) == 2 and limiter.counts["retry_timeout"] == 1

    attempts.clear()
    with pytest.raises(BadRequest):
        await limiter.process_request(flaky, (BadRequest("message is too long"),), {}, "sendMessage",
                                      {"chat_id": 1}, None)
    assert len(attempts) == 1


async def test_flood_control_in_one_chat_does_not_hold_up_another(tg, small_index):
    async with running_bot(tg, small_index):
        tg.fail_next("sendMessage", status=429, retry_after=2)
        tg.message("harbour", user_id=USER)
        await tg.wait_for("sendMessage")
        started = time.monotonic()
        other = await ask(tg, "apples", chat_id=OTHER_USER)
        assert time.monotonic() - started < 1.5
        assert not tg.sent_messages(USER)
        await tg.wait_for_sent(USER, timeout=5)
    assert "apples" in other["text"]


async def test_replies_to_one_chat_keep_their_order_and_are_paced(tg, small_index):
    settings = bot_settings(tg, delivery={"private_rate": 4.0})
    questions = ["harbour", "apples", "cider", "harbour apples", "press"]
    async with running_bot(tg, SlowIndex(small_index, 0.3, slow_for="harbour"), settings):
        for text in questions:
            tg.message(text, user_id=USER)
        await tg.wait_for("getUpdates", count=2)
        started = time.monotonic()
        sent = await tg.wait_for_sent(USER, count=len(questions), timeout=15)
        elapsed = time.monotonic() - started
    assert [m["reply_to_message"]["text"] for m in sent] == questions
    assert elapsed >= (len(questions) - 2) / 4  # 4 messages a second to one private chat, one at a time


# -- delivery: the inbox, restarts, late questions ----------------------------------------------------


async def test_starting_while_the_bot_api_is_down_waits_for_it(tg, small_index, caplog):
    tg.outage(2.5, methods=("getMe",))
    started = time.monotonic()
    async with running_bot(tg, small_index):
        assert time.monotonic() - started >= 2
        assert "harbour" in (await ask(tg, "harbour"))["text"]
    assert any("cannot reach the Bot API" in r.getMessage() and "getMe" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


async def test_an_outage_during_a_question_is_waited_out(tg, small_index):
    async with running_bot(tg, small_index) as application:
        tg.outage(3, kind="drop")
        tg.message("harbour")
        await tg.wait_for("sendMessage", count=2)  # failed, tried again...
        [reply] = await tg.wait_for_sent(USER, timeout=10)
        assert application.update_processor.counts["answered"] == 1
    assert "harbour" in reply["text"]


async def test_what_was_not_answered_before_a_stop_is_answered_after_the_restart(tg, small_index, caplog):
    settings = bot_settings(tg, delivery={"drain_timeout": 0.2})
    tg.outage(3)
    async with running_bot(tg, small_index, settings):
        tg.message("harbour")
        await tg.wait_for("sendMessage")
    assert any("1 left in the inbox" in r.getMessage() for r in caplog.records)
    assert not tg.sent_messages(USER)
    tg.end_outage()
    async with running_bot(tg, small_index, settings):
        [reply] = await tg.wait_for_sent(USER, timeout=5)
        await asyncio.sleep(0.3)
    assert "harbour" in reply["text"] and len(tg.sent_messages(USER)) == 1
    assert Inbox.open(settings.inbox_path).counts() == {"answered": 1}


async def test_an_update_delivered_again_after_a_restart_is_answered_once(tg, small_index):
    settings = bot_settings(tg)
    async with running_bot(tg, small_index, settings):
        update = tg.message("harbour")
        await tg.wait_for_sent(USER)
    Inbox.open(settings.inbox_path).close()
    with tg._lock:  # Telegram forgot the confirmation (the bot died before its next getUpdates)
        tg._updates.append(copy.deepcopy(update))
    async with running_bot(tg, small_index, settings):
        await tg.wait_for("getUpdates", count=len([c for c in tg.calls if c.method == "getUpdates"]) + 2)
        assert "apples" in (await ask(tg, "apples"))["text"]
    assert len(tg.sent_messages(USER)) == 2  # harbour once, apples once


def _old_message(tg: FakeTelegram, text: str, age: float) -> dict[str, Any]:
    update = tg.make_message_update(text)
    update["message"]["date"] = int(time.time() - age)
    return tg.queue(update)


async def test_a_question_that_waited_too_long_is_answered_with_a_note(tg, small_index):
    settings = bot_settings(tg, delivery={"max_age": 600})
    async with running_bot(tg, small_index, settings) as application:
        _old_message(tg, "harbour", age=3600)
        [late] = await tg.wait_for_sent(USER)
        fresh = await ask(tg, "apples")
        assert application.update_processor.counts["late"] == 1
    assert "\n⏳ Sorry for the late answer: you asked this on " in late["text"]  # under the header
    assert "harbour" in late["text"] and "Sorry" not in fresh["text"]


async def test_late_questions_can_be_dropped_instead(tg, small_index):
    settings = bot_settings(tg, delivery={"max_age": 600, "late": "drop"})
    async with running_bot(tg, small_index, settings) as application:
        _old_message(tg, "harbour", age=3600)
        assert "apples" in (await ask(tg, "apples"))["text"]
        assert application.update_processor.counts["dropped_late"] == 1
    assert len(tg.sent_messages(USER)) == 1
    assert Inbox.open(settings.inbox_path).counts() == {"answered": 1, "dropped_late": 1}


async def test_a_corrupt_inbox_is_set_aside_and_the_bot_starts(tg, small_index, caplog):
    settings = bot_settings(tg)
    settings.inbox_path.write_bytes(b"\x00garbage" * 500)
    async with running_bot(tg, small_index, settings):
        assert "harbour" in (await ask(tg, "harbour"))["text"]
    assert "cannot be used (file is not a database): set aside as inbox.sqlite3.broken-" in caplog.text


# -- the real run_polling ------------------------------------------------------------------------------


def _polling_setup(config: Path, tmp_path: Path, tg: FakeTelegram) -> dict[str, str]:
    """A config for ``corpus-bot run`` on the shipped corpus against ``tg``, and its environment."""
    config.write_text(f"corpus: {{path: {REPO / 'corpus'}}}\nindex: {{cache_dir: {tmp_path / 'cache'}}}\n"
                      f"telegram: {{base_url: '{tg.api_url}'}}\n", encoding="utf-8")
    return {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN}


@pytest.mark.slow
def test_corpus_bot_run_polls_answers_and_stops_cleanly_on_sigterm(tmp_path):
    config = tmp_path / "config.yaml"
    with FakeTelegram(token=TOKEN) as tg:
        env = _polling_setup(config, tmp_path, tg)
        with corpus_bot_run("--config", str(config), env=env) as process:
            tg.wait_for_blocking("getUpdates", timeout=20)
            tg.message("basic research", user_id=USER)
            tg.wait_for_blocking("sendMessage", timeout=10)
            deadline = time.monotonic() + 5
            while not tg.sent_messages(USER) and time.monotonic() < deadline:
                time.sleep(0.05)  # the call is recorded before the fake has carried it out
            assert "2023-08-05" in tg.sent_messages(USER)[0]["text"]
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=15)
        tg.assert_no_errors()
    assert process.returncode == 0, stderr
    assert "ready" in stderr
    assert TOKEN.split(":", 1)[1] not in stderr


@pytest.mark.slow
def test_a_bot_killed_with_sigkill_answers_after_its_restart(tmp_path):
    """A real ``kill -9`` while answers cannot get through: nothing is lost, nothing is answered twice."""
    config = tmp_path / "config.yaml"
    with FakeTelegram(token=TOKEN) as tg:
        env = _polling_setup(config, tmp_path, tg)
        questions = ["basic research", "science policy", "national laboratories"]
        with corpus_bot_run("--config", str(config), env=env) as process:
            tg.wait_for_blocking("getUpdates", timeout=60)
            tg.outage(600)
            for user, question in enumerate(questions, start=900_001):
                tg.message(question, user_id=user)
            tg.wait_for_blocking("sendMessage", count=3, timeout=20)  # all three in hand, failing
            process.kill()
            process.wait(timeout=10)
        assert not tg.sent_messages()
        tg.end_outage()
        with corpus_bot_run("--config", str(config), env=env) as process:
            deadline = time.monotonic() + 60
            while len(tg.sent_messages()) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
        tg.assert_no_errors()
    asked = sorted(m["reply_to_message"]["text"] for m in tg.sent_messages())
    assert asked == sorted(questions), stderr
    assert "answering 3 update(s) left from before the restart" in stderr
    assert process.returncode == 0


@pytest.mark.slow
def test_corpus_bot_run_with_a_rejected_token_stops_with_one_line(tmp_path):
    config = tmp_path / "config.yaml"
    with FakeTelegram(token=TOKEN) as tg:
        config.write_text(f"corpus: {{path: {REPO / 'corpus'}}}\nindex: {{cache_dir: {tmp_path / 'cache'}}}\n"
                          f"telegram: {{base_url: '{tg.api_url}'}}\n", encoding="utf-8")
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": "999:wrong-token"}
        done = subprocess.run(
            [sys.executable, "-m", "bot", "run", "--config", str(config)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
        )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "corpus-bot: error: Telegram rejected the bot token in TELEGRAM_BOT_TOKEN (telegram.token_env)"
    )
    assert "wrong-token" not in done.stderr


# -- ranking by meaning --------------------------------------------------------------------------------


async def test_meaning_is_used_once_embedded_and_about_tells_the_progress(tg, small_corpus_dir, tmp_path):
    from retrieval import IndexSettings, load_corpus
    from tests.test_semantic import ToyEncoder

    documents = load_corpus(small_corpus_dir).documents
    index = SearchIndex.build(documents, IndexSettings(max_sentence_chars=100_000))
    build = index.vector_build(ToyEncoder(), tmp_path)
    index.attach_vectors(build)
    async with running_bot(tg, index):
        about = (await ask(tg, "/about"))["text"]
        assert "By meaning: being prepared, 0 % (0 of 14 sentences)" in about
        assert "No quotes found for quayside" in (await ask(tg, "quayside"))["text"]
        await asyncio.to_thread(build.run)
        assert "By meaning: on" in (await ask(tg, "/about"))["text"]
        reply = await ask(tg, "quayside")
    assert "harbour" in reply["text"].casefold()
    bold = entity_texts(reply, "bold")
    assert bold and all(b.rstrip(".").isdigit() for b in bold)  # only the numbers: no word of it matched

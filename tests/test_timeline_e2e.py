"""End-to-end: /timeline and the chart buttons, the real bot against the fake Bot API over real HTTP.

The corpus is small and dated by hand, so every number a caption or a page of quotes shows is known:
"harbour" is in 15 sentences, 13 of them dated from 2019-02-10 to 2023-12-30 (59 months, so one bar a
month), 5 in March 2021 (the busiest month), 2 in undated documents; "lighthouse" in 4, from
2019-11-03 to 2022-08-01, busiest August 2022 (2); "cable" only in an undated document. The fake
checks every sendPhoto like Telegram (a real PNG or JPEG, 10 MB, dimensions, a 1024-unit caption), and
``tg.assert_no_errors()`` runs after each test.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
import time
from pathlib import Path
from typing import Any

import pytest

import bot.chart
from retrieval import SearchIndex, load_corpus
from tests import test_bot_e2e
from tests.fake_telegram import FakeTelegram
from tests.test_bot_e2e import (
    BOT_USERNAME,
    GROUP,
    ORDERS,
    OTHER_USER,
    USER,
    ask,
    callback_answer,
    labels,
    press,
    running_bot,
)

# The harness's fixtures: the fake Bot API (with assert_no_errors() after each test), and the check that
# the token never reaches the logs.
tg = test_bot_e2e.tg
_token_never_logged = test_bot_e2e._token_never_logged

DATED = {
    "survey.txt": ("2019-02-10", "Harbour Survey",
                   "The harbour survey counted forty moorings along the quay. "
                   "Divers inspected the harbour floor in February."),
    "autumn.txt": ("2019-11-03", "Autumn Storms",
                   "Autumn gales pushed waves over the harbour wall. "
                   "The lighthouse beam swept the bay all night."),
    "summer.txt": ("2020-06-15", "A Quiet Summer",
                   "Yachts filled the harbour during a calm June. "
                   "Tourists climbed the lighthouse stairs every afternoon."),
    "log.txt": ("2021-03-04", "The Keeper's Log",
                "A cargo ship ran aground outside the harbour. Tugs towed it into the harbour at dawn. "
                "The harbour master closed the channel for a day."),
    "repairs.txt": ("2021-03-20", "Spring Repairs",
                    "Masons rebuilt the harbour steps in March. "
                    "A crane lifted new stones onto the harbour pier."),
    "lamp.txt": ("2022-08-01", "The New Lamp",
                 "An electric lamp replaced the lighthouse oil burner. "
                 "Engineers tested the lighthouse lens twice. "
                 "The fishing fleet returned to the harbour at dusk."),
    "festival.txt": ("2023-05-09", "Harbour Festival",
                     "Boats decorated with flags paraded around the harbour. "
                     "Musicians played on the harbour green until late."),
    "winter.txt": ("2023-12-30", "Year's End", "Ice formed along the edges of the harbour in December."),
}  # fmt: skip
UNDATED = {
    "note.txt": ("Harbour Note", "https://example.org/x",
                 "An old chart shows the harbour before the breakwater."),
    "cable.txt": ("Cable Memo", "https://example.org/y",
                  "A submarine cable once ran from the harbour to the island. The cable failed in a storm."),
}  # fmt: skip

HARBOUR = (
    "harbour: 15 sentences, first 2019-02-10, last 2023-12-30; busiest Mar 2021 (5); "
    "2 in undated documents, not drawn"
)
LIGHTHOUSE = "lighthouse: 4 sentences, first 2019-11-03, last 2022-08-01; busiest Aug 2022 (2)"
CHART_BUTTONS = ["Earliest", "Latest", "Busiest: Mar 2021"]
_DATE = re.compile(r"📅 (\d{4}-\d{2}-\d{2}|date unknown)")


@pytest.fixture(scope="module")
def timeline_index(tmp_path_factory: pytest.TempPathFactory) -> SearchIndex:
    folder = tmp_path_factory.mktemp("timeline-corpus")
    for name, (date, title, body) in DATED.items():
        (folder / name).write_text(f"date {date} {title}\n\n{body}\n", encoding="utf-8")
    for name, (title, url, body) in UNDATED.items():
        (folder / name).write_text(f"---\ntitle: {title}\nurl: {url}\n---\n{body}\n", encoding="utf-8")
    corpus = load_corpus(Path(folder))
    assert [p.file for p in corpus.problems] == sorted(UNDATED)  # "date unknown", as they should be
    assert not any(p.skipped for p in corpus.problems)
    return SearchIndex.build(corpus.documents)


@pytest.fixture
def draws(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The titles of the charts bot.chart.draw_timeline really drew (the handler imports it per chart)."""
    drawn: list[str] = []
    draw = bot.chart.draw_timeline

    def counting(timeline: Any, title: str) -> bytes:
        drawn.append(title)
        return draw(timeline, title)

    monkeypatch.setattr(bot.chart, "draw_timeline", counting)
    return drawn


@pytest.fixture
def legends(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The legend entries of each chart drawn, read from the figure once bot.chart._draw has drawn it."""
    seen: list[list[str]] = []
    draw = bot.chart._draw

    def spying(figure: Any, timeline: Any, title: str) -> None:
        draw(figure, timeline, title)
        legend = figure.axes[0].get_legend()
        seen.append([text.get_text() for text in legend.get_texts()] if legend else [])

    monkeypatch.setattr(bot.chart, "_draw", spying)
    return seen


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (which must come first, right after the signature)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def dates(message: dict[str, Any]) -> list[dt.date | None]:
    """The date of each quote on a page of quotes, in order (None: "date unknown")."""
    found = _DATE.findall(message["text"])
    return [None if d == "date unknown" else dt.date.fromisoformat(d) for d in found]


def photo_of(tg: FakeTelegram, message: dict[str, Any]) -> bytes:
    """The bytes the bot uploaded for the photo ``message``."""
    photos = tg.sent_photos(message["chat"]["id"])
    [sent] = [p for p in photos if p["message"]["message_id"] == message["message_id"]]
    return sent["data"]


async def pressed(
    tg: FakeTelegram, message: dict[str, Any], label: str, user_id: int = USER
) -> dict[str, Any]:
    """Press ``label`` on ``message``; the new message the bot sends in answer."""
    chat = message["chat"]["id"]
    before = len(tg.sent_messages())
    since = await press(tg, message, label, user_id=user_id)
    [answer] = await tg.wait_for_sent(chat, since=before, timeout=10)
    assert (await callback_answer(tg, since)).get("text") is None  # the button just stops spinning
    return answer


async def pressed_edit(tg: FakeTelegram, message: dict[str, Any], label: str) -> dict[str, Any]:
    """Press ``label`` on ``message``, which is edited in place; its new state."""
    since = await press(tg, message, label)
    [edit] = await tg.wait_for("editMessageText", since=since)
    assert edit.params["message_id"] == message["message_id"]
    return tg.get_message(message["chat"]["id"], message["message_id"])


def assert_chart(tg: FakeTelegram, reply: dict[str, Any], replying_to: str) -> bytes:
    """``reply`` is a 1280 x 720 timeline photo answering the message whose text is ``replying_to``."""
    assert "photo" in reply and "text" not in reply, reply
    assert reply["reply_to_message"]["text"] == replying_to
    assert [(p["width"], p["height"]) for p in reply["photo"]] == [(320, 180), (1280, 720)]
    data = photo_of(tg, reply)
    assert png_size(data) == (bot.chart.WIDTH, bot.chart.HEIGHT) == (1280, 720)
    assert reply["photo"][-1]["file_size"] == len(data)
    return data


# -- /timeline topic -------------------------------------------------------------------------------------


async def test_timeline_sends_a_chart_with_a_caption_and_buttons(tg, timeline_index, draws):
    async with running_bot(tg, timeline_index, typing_after=0):
        reply = await ask(tg, "/timeline harbour", timeout=20)
    assert_chart(tg, reply, "/timeline harbour")
    assert reply["caption"] == f"📈 Sentences per month\n{HARBOUR}"
    [topic] = [e for e in reply["caption_entities"] if e["type"] == "italic"]
    caption = reply["caption"].encode("utf-16-le")
    start, end = 2 * topic["offset"], 2 * (topic["offset"] + topic["length"])
    assert caption[start:end].decode("utf-16-le") == "harbour"
    assert labels(reply) == CHART_BUTTONS
    assert draws == ["harbour"]
    assert {a["action"] for a in tg.chat_actions} == {"upload_photo"}  # not "typing": a photo is coming


async def test_the_chart_buttons_send_the_earliest_latest_and_busiest_quotes(tg, timeline_index):
    async with running_bot(tg, timeline_index):
        chart = await ask(tg, "/timeline harbour", timeout=20)

        earliest = await pressed(tg, chart, "Earliest")
        assert earliest["reply_to_message"]["message_id"] == chart["message_id"]
        assert earliest["text"].startswith("🔎 Quotes 1–3 of 15 for harbour, oldest first")
        assert dates(earliest) == [dt.date(2019, 2, 10), dt.date(2019, 2, 10), dt.date(2019, 11, 3)]

        latest = await pressed(tg, chart, "Latest")
        assert latest["text"].startswith("🔎 Quotes 1–3 of 15 for harbour, newest first")
        assert dates(latest) == [dt.date(2023, 12, 30), dt.date(2023, 5, 9), dt.date(2023, 5, 9)]

        busiest = await pressed(tg, chart, "Busiest: Mar 2021")
        assert busiest["text"].startswith("🔎 Quotes 1–3 of 5 for harbour on:2021-03")
        rest = await pressed_edit(tg, busiest, "More »")
        assert rest["text"].startswith("🔎 Quotes 4–5 of 5")
        in_march = dates(busiest) + dates(rest)
        assert len(in_march) == 5 and all(d and (d.year, d.month) == (2021, 3) for d in in_march)

        # The pages go on in their order: the whole list oldest first is the dated ones, then the undated.
        page = earliest
        seen = dates(page)
        while "More »" in labels(page):
            page = await pressed_edit(tg, page, "More »")
            seen += dates(page)
    assert len(seen) == 15 and seen[-2:] == [None, None]
    assert seen[:13] == sorted(seen[:13])
    assert (seen[0], seen[12]) == (dt.date(2019, 2, 10), dt.date(2023, 12, 30))
    assert len(tg.sent_photos()) == 1


async def test_two_topics_share_one_chart(tg, timeline_index, draws, legends):
    async with running_bot(tg, timeline_index):
        reply = await ask(tg, "/timeline harbour vs lighthouse", timeout=20)
        assert_chart(tg, reply, "/timeline harbour vs lighthouse")
        assert reply["caption"] == f"📈 Sentences per month\n{HARBOUR}\n{LIGHTHOUSE}"
        assert labels(reply) == [
            "Earliest “harbour”", "Latest “harbour”", "Busiest: Mar 2021",
            "Earliest “lighthouse”", "Latest “lighthouse”", "Busiest: Aug 2022",
        ]  # fmt: skip
        assert [len(row) for row in reply["reply_markup"]["inline_keyboard"]] == [3, 3]  # a row a topic
        earliest = await pressed(tg, reply, "Earliest “lighthouse”")
        assert earliest["text"].startswith("🔎 Quotes 1–3 of 4 for lighthouse, oldest first")
        assert dates(earliest) == [dt.date(2019, 11, 3), dt.date(2020, 6, 15), dt.date(2022, 8, 1)]
    assert draws == ["harbour vs lighthouse"]  # one picture for both
    assert legends == [["harbour", "lighthouse"]]


async def test_every_topic_is_in_the_legend(tg, timeline_index, legends):
    async with running_bot(tg, timeline_index):
        reply = await ask(tg, "/timeline _harbour vs lighthouse", timeout=20)
    assert reply["caption"].startswith("📈 Sentences per month\n_harbour: 15 sentences")
    assert legends == [["_harbour", "lighthouse"]]


async def test_timeline_in_a_group_with_and_without_the_bot_username(tg, timeline_index):
    async with running_bot(tg, timeline_index):
        addressed = await ask(tg, f"/timeline@{BOT_USERNAME} harbour", chat_id=GROUP, timeout=20)
        plain = await ask(tg, "/timeline lighthouse", chat_id=GROUP, timeout=20)
        hint = await ask(tg, f"/timeline@{BOT_USERNAME}", chat_id=GROUP)
        tg.message("/timeline@some_other_bot harbour", chat_id=GROUP, chat_type="group")  # not for us
        # Anyone in the group may press the buttons.
        latest = await pressed(tg, addressed, "Latest", user_id=OTHER_USER)
    assert_chart(tg, addressed, f"/timeline@{BOT_USERNAME} harbour")
    assert addressed["chat"]["id"] == GROUP and addressed["caption"].endswith(HARBOUR)
    assert_chart(tg, plain, "/timeline lighthouse")
    assert plain["caption"] == f"📈 Sentences per month\n{LIGHTHOUSE}"
    assert "Name a topic after the command" in hint["text"]
    assert latest["chat"]["id"] == GROUP and dates(latest)[0] == dt.date(2023, 12, 30)
    assert len(tg.sent_photos(GROUP)) == 2
    replied_to = [m.get("reply_to_message", {}).get("text") for m in tg.sent_messages(GROUP)]
    assert "/timeline@some_other_bot harbour" not in replied_to


# -- when there is nothing to draw -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/timeline zqxvwk", "No sentence holds all the words of “zqxvwk”."),
        ("/timeline cable", "Every sentence that matches is in an undated document: there is no timeline"),
        ("/timeline harbour after:2023-13", "after:2023-13 is not a valid date (use after:YYYY-MM-DD)"),
        ("/timeline the of", "common words"),
        ("/timeline", "Name a topic after the command, for example: /timeline "),
        ("/timeline   ", "Name a topic after the command"),
        ("/timeline " + "harbour " * 200, "That topic is 1,599 characters long"),
    ],
    ids=["no-match", "undated-only", "bad-date", "stop-words", "no-topic", "blank-topic", "too-long"],
)
async def test_nothing_to_draw_gets_a_text_notice_and_no_photo(tg, timeline_index, draws, command, expected):
    async with running_bot(tg, timeline_index):
        reply = await ask(tg, command, timeout=10)
    assert "photo" not in reply and expected in reply["text"], reply.get("text")
    assert reply["reply_to_message"]["message_id"]  # it answers the command
    assert tg.sent_photos() == [] and draws == []


async def test_a_topic_word_the_corpus_lacks_is_named_in_the_caption(tg, timeline_index):
    async with running_bot(tg, timeline_index):
        answer = await ask(tg, "harbour zqxvwk")
        assert "“zqxvwk” is not in the corpus" in answer["text"]  # what an ordinary answer says
        reply = await ask(tg, "/timeline harbour zqxvwk", timeout=20)
    # Either a notice instead of the chart, or a caption that says the word was left out.
    assert "photo" not in reply or "not in the corpus" in reply["caption"], reply["caption"]


async def test_a_dollar_sign_in_the_topic_is_drawn_as_text(tg, timeline_index):
    async with running_bot(tg, timeline_index):
        reply = await ask(tg, "/timeline harbour $$", timeout=20)
    assert "photo" in reply, reply.get("text")
    assert reply["caption"].startswith("📈 Sentences per month\nharbour $$: 15 sentences")


async def test_a_topic_with_html_characters_is_captioned_literally(tg, timeline_index):
    async with running_bot(tg, timeline_index):
        reply = await ask(tg, "/timeline harbour & <quay>", timeout=20)
    assert_chart(tg, reply, "/timeline harbour & <quay>")
    assert reply["caption"] == (
        "📈 Sentences per day\nharbour & <quay>: 1 sentence, first 2019-02-10, last 2019-02-10; "
        "busiest 2019-02-10 (1)"
    )
    assert labels(reply) == ["Earliest", "Latest"]  # one period: no busiest one to show


# -- the buttons under an ordinary answer ----------------------------------------------------------------


async def test_the_timeline_button_under_an_answer_sends_the_chart(tg, timeline_index):
    async with running_bot(tg, timeline_index):
        answer = await ask(tg, "harbour")
        assert answer["text"].startswith("🔎 Quotes 1–3 of 15 for harbour")
        assert labels(answer)[-3:] == ORDERS
        chart = await pressed(tg, answer, "📈 Timeline")
        # From a page sorted by date, the chart is still of the topic (without its sort:).
        newest = await pressed_edit(tg, answer, "Newest first")
        again = await pressed(tg, newest, "📈 Timeline")
    assert_chart(tg, chart, answer["text"])
    assert chart["reply_to_message"]["message_id"] == answer["message_id"]
    assert chart["caption"] == f"📈 Sentences per month\n{HARBOUR}" and labels(chart) == CHART_BUTTONS
    assert again["caption"] == chart["caption"] and photo_of(tg, again) == photo_of(tg, chart)


async def test_newest_and_oldest_first_sort_the_answer_in_place(tg, timeline_index):
    async with running_bot(tg, timeline_index):
        answer = await ask(tg, "harbour")
        sent = len(tg.sent_messages())
        newest = await pressed_edit(tg, answer, "Newest first")
        assert newest["text"].startswith("🔎 Quotes 1–3 of 15 for harbour, newest first")
        assert dates(newest) == [dt.date(2023, 12, 30), dt.date(2023, 5, 9), dt.date(2023, 5, 9)]
        assert labels(newest)[-3:] == ["Oldest first", "Best first", "📈 Timeline"]

        page2 = await pressed_edit(tg, newest, "More »")
        assert page2["text"].startswith("🔎 Quotes 4–6 of 15 for harbour, newest first")
        assert dates(page2) == sorted(dates(page2), reverse=True) and dates(page2)[0] <= dt.date(2023, 5, 9)

        oldest = await pressed_edit(tg, page2, "Oldest first")  # a new order starts at its first page
        assert oldest["text"].startswith("🔎 Quotes 1–3 of 15 for harbour, oldest first")
        assert dates(oldest) == [dt.date(2019, 2, 10), dt.date(2019, 2, 10), dt.date(2019, 11, 3)]

        best = await pressed_edit(tg, oldest, "Best first")
        assert best["text"].startswith("🔎 Quotes 1–3 of 15 for harbour\n")
        assert labels(best)[-3:] == ORDERS
        assert len(tg.sent_messages()) == sent  # every one of them was an edit


# -- the chart cache -------------------------------------------------------------------------------------


async def test_the_same_chart_is_drawn_once_and_sent_again_from_the_cache(tg, timeline_index, draws):
    async with running_bot(tg, timeline_index):
        started = time.perf_counter()
        first = await ask(tg, "/timeline harbour", timeout=20)
        drawing = time.perf_counter() - started
        started = time.perf_counter()
        second = await ask(tg, "/timeline harbour", timeout=20)
        cached = time.perf_counter() - started
        third = await pressed(tg, await ask(tg, "harbour"), "📈 Timeline")  # the same topic
        assert draws == ["harbour"]
        other = await ask(tg, "/timeline lighthouse", timeout=20)
    assert draws == ["harbour", "lighthouse"]
    assert photo_of(tg, first) == photo_of(tg, second) == photo_of(tg, third) != photo_of(tg, other)
    assert first["caption"] == second["caption"] == third["caption"]
    assert cached < max(drawing, 1.0)  # loose: timing is only a hint, the draw count is the check

"""The bot over a live index: each answer uses one generation, and buttons made before an update still find
their quote after it (by the quote's segment address), or say that the corpus changed, never showing
another sentence.

The unit tests check the address (``bot.callbacks``) and :class:`bot.handlers.Services`; the end-to-end
tests run the real bot, in polling and in webhook mode, against the fake Bot API, with a ``LiveIndex`` over
a corpus folder the test changes and refreshes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.callbacks import (
    ContextButton,
    address_of,
    decode_callback,
    encode_context,
    resolve_sentence,
    short_fingerprint,
)
from bot.config import Settings
from bot.handlers import IndexStatus, Services
from bot.metrics import TimedIndex
from retrieval import IndexSettings, LiveIndex, SearchIndex
from tests import test_bot_e2e as polling
from tests import test_webhook as webhook
from tests.fake_telegram import DEFAULT_TOKEN, DEFAULT_USER_ID, FakeTelegram

USER = DEFAULT_USER_ID
DOCS = {
    "a.txt": "date 2020-01-01 Harbour news\n\nThe harbour was closed by the storm. Ships waited.\n",
    "b.txt": "date 2020-02-01 Orchard news\n\nThe apple harvest broke a record. Cider was pressed.\n",
    "c.txt": "date 2020-03-01 Council news\n\nThe council approved the bridge budget. The river rose.\n",
}
LIGHTHOUSE = (
    "date 2021-05-05 The Lighthouse\n\nHer logbook listed every lamp she lit. The lighthouse keeper counted "
    "seventeen ships in the storm. The lighthouse stood on the northern cape. Fog rolled in every autumn. "
    "Supply boats came once a month. A bell rang through the fog at night.\n"
)
QUOTE = "The lighthouse keeper counted seventeen ships in the storm."
BRIDGE = "date 2022-06-06 Bridge works\n\nThe new bridge opened in June. Traffic crossed the river at dawn.\n"
CHANGED = "corpus has changed"


def write(folder: Path, name: str, text: str, *, age: float = 10.0) -> Path:
    """A corpus file written ``age`` seconds ago (settled: a refresh takes it at once)."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    past = time.time() - age
    os.utime(path, (past, past))
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in DOCS.items():
        write(folder, name, text)
    return folder


@pytest.fixture
def live(corpus: Path, tmp_path: Path) -> LiveIndex:
    return LiveIndex.open(corpus, IndexSettings(), tmp_path / "cache")


def refresh(live: LiveIndex) -> None:
    update = live.refresh(settle=0)
    assert update.changed_anything, update


def quote_hit(index: SearchIndex) -> Any:
    [hit] = [h for h in index.search("lighthouse keeper", k=5).hits if h.text == QUOTE]
    return hit


# -- the address of a quote ------------------------------------------------------------------------------


def test_an_address_finds_its_sentence_again_while_other_documents_come_and_go(live, corpus):
    write(corpus, "d.txt", LIGHTHOUSE)
    refresh(live)
    before = live.index
    hit = quote_hit(before)
    address = address_of(hit, short_fingerprint(before.fingerprint))
    assert address == (short_fingerprint(hit.segment), hit.segment_sentence)
    assert resolve_sentence(before, *address) == hit.sentence_id

    write(corpus, "e.txt", BRIDGE)  # a document added after it
    refresh(live)
    found = resolve_sentence(live.index, *address)
    assert found is not None and live.index.hit(found).text == QUOTE

    (corpus / "a.txt").unlink()  # a document before it removed: its id in the index changes
    refresh(live)
    after = live.index
    found = resolve_sentence(after, *address)
    assert found is not None and found != hit.sentence_id
    assert after.hit(found).text == QUOTE and after.hit(found).title == "The Lighthouse"

    (corpus / "d.txt").unlink()  # its own document removed: gone, and nothing else in its place
    refresh(live)
    assert resolve_sentence(live.index, *address) is None


def test_a_changed_document_is_a_new_one_for_old_addresses(live, corpus):
    write(corpus, "d.txt", LIGHTHOUSE)
    refresh(live)
    hit = quote_hit(live.index)
    address = address_of(hit, "")
    write(corpus, "d.txt", LIGHTHOUSE.replace("Her logbook", "His logbook"), age=5)
    refresh(live)
    assert quote_hit(live.index).text == QUOTE  # still in the corpus, but in a new segment
    assert resolve_sentence(live.index, *address) is None


def test_an_index_of_one_segment_takes_the_buttons_made_before_segments(small_index):
    """Buttons made before hits had segments carry the index's short fingerprint and the sentence id."""
    fingerprint = short_fingerprint(small_index.fingerprint)
    hit = small_index.search("harbour", k=1).hits[0]
    assert address_of(hit, fingerprint) == (fingerprint, hit.sentence_id)
    assert resolve_sentence(small_index, fingerprint, hit.sentence_id) == hit.sentence_id
    assert resolve_sentence(small_index, fingerprint, 10**9) is None
    assert resolve_sentence(small_index, "0000abcd", hit.sentence_id) is None


def test_an_address_that_fits_several_segments_finds_nothing(monkeypatch):
    import bot.callbacks

    found: list[tuple[str, int]] = []
    index = SimpleNamespace(known_segments=("segment-a", "segment-b"), fingerprint="x",
                            find_sentence=lambda s, i: found.append((s, i)) or 0)  # fmt: skip
    monkeypatch.setattr(bot.callbacks, "short_fingerprint", lambda f: "0123abcd")  # a collision
    assert resolve_sentence(index, "0123abcd", 3) is None  # type: ignore[arg-type]
    assert not found


def test_a_button_carries_the_address_within_64_bytes(live, corpus):
    write(corpus, "d.txt", LIGHTHOUSE)
    refresh(live)
    hit = quote_hit(live.index)
    button = ContextButton(*address_of(hit, ""), 10, edit=True)
    data = encode_context(button)
    assert len(data.encode()) <= 64 and decode_callback(data) == button


# -- Services over a live index ----------------------------------------------------------------------------


def test_services_follow_the_generations_of_a_live_index(live, corpus):
    wrapped: list[SearchIndex] = []

    def wrap(index: SearchIndex) -> SearchIndex:
        wrapped.append(index)
        return SimpleNamespace(inner=index, fingerprint=index.fingerprint, stats=index.stats,
                               segment_fingerprints=index.segment_fingerprints)  # type: ignore[return-value]

    services = Services.create(Settings(), live, wrap=wrap)
    first = services.index
    assert first is services.index and wrapped == [live.index]  # wrapped once per generation
    assert services.stats.documents == 3
    assert services.status() == IndexStatus(live.generation, 1, live.last_update, 0, 0, 0)

    write(corpus, "d.txt", LIGHTHOUSE)
    refresh(live)
    second = services.index
    assert second is not first and second.inner is live.index and len(wrapped) == 2
    assert services.stats.documents == 4 and services.stats_of(first).documents == 3
    status = services.status()
    assert (status.generation, status.segments, status.documents_added) == (live.generation, 2, 1)
    assert status.last_update == live.last_update and status.last_update is not None
    assert status.last_update >= time.time() - 60


def test_a_fixed_index_is_generation_0_of_one_segment(small_index):
    services = Services.create(Settings(), small_index)
    assert services.index is small_index and services.live is None
    assert services.status() == IndexStatus()
    assert services.stats == small_index.stats


async def test_a_chart_of_an_older_generation_is_not_served(live, corpus):
    services = Services.create(Settings(), live)
    old = await services.chart(("storm",))
    assert isinstance(old, tuple) and await services.chart(("storm",)) is old  # kept
    assert "1 sentence" in old[1].text
    write(corpus, "d.txt", LIGHTHOUSE)
    refresh(live)
    new = await services.chart(("storm",))
    assert isinstance(new, tuple) and new is not old
    assert "2 sentences" in new[1].text


# -- end to end --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _secrets_never_logged(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    yield
    for secret in (DEFAULT_TOKEN.split(":", 1)[1], webhook.SECRET):
        assert secret not in caplog.text


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=DEFAULT_TOKEN) as server:
        yield server
        server.assert_no_errors()


def context_data(message: dict[str, Any], label: str) -> str:
    [data] = [b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row
              if b["text"] == label]
    return data


async def test_polling_a_live_index_answers_new_documents_and_keeps_its_buttons(tg, live, corpus):
    async with polling.running_bot(tg, live):
        assert "No quotes found" in (await polling.ask(tg, "lighthouse keeper"))["text"]

        write(corpus, "d.txt", LIGHTHOUSE)
        await asyncio.to_thread(refresh, live)
        reply = await polling.ask(tg, "lighthouse keeper")
        assert QUOTE in reply["text"] and "The Lighthouse" in reply["text"]
        old_id = quote_hit(live.index).sentence_id

        since = len(tg.calls)
        tg.inline_query("lighthouse keeper")
        [call] = await tg.wait_for("answerInlineQuery", since=since)
        hit = quote_hit(live.index)
        assert f"{short_fingerprint(hit.segment)}-{hit.segment_sentence}" in [r["id"] for r in
                                                                              call.params["results"]]

        # Other documents come and go: the quote's id in the index changes, its address does not.
        write(corpus, "e.txt", BRIDGE)
        (corpus / "a.txt").unlink()
        await asyncio.to_thread(refresh, live)
        assert quote_hit(live.index).sentence_id != old_id
        context = await press_for_context(tg, reply, "Context 1")
        assert context["text"].startswith("📖 Context: 📅 2021-05-05 · The Lighthouse")
        assert polling.bold(context) == [QUOTE]
        [around] = polling.entity_texts(context, "blockquote")
        assert around.startswith("Her logbook listed every lamp she lit.")

        about = (await polling.ask(tg, "/about"))["text"]
        assert "Documents: 4" in about and "Segments: 3" in about
        assert f"Generation: {live.generation:,}" in about
        assert f"Last update: {utc(live.last_update)}" in about

        # The quote's own document removed: both buttons say so, and nothing is sent or edited.
        (corpus / "d.txt").unlink()
        await asyncio.to_thread(refresh, live)
        sent, edited = len(tg.sent_messages()), len(tg.edited_messages())
        since = await polling.press(tg, reply, "Context 1")
        assert CHANGED in (await polling.callback_answer(tg, since))["text"]
        since = await polling.press(tg, context, "More context")
        assert CHANGED in (await polling.callback_answer(tg, since))["text"]
        await asyncio.sleep(0.2)
        assert (len(tg.sent_messages()), len(tg.edited_messages())) == (sent, edited)


async def press_for_context(tg: FakeTelegram, message: dict[str, Any], label: str) -> dict[str, Any]:
    sent = len(tg.sent_messages())
    since = await polling.press(tg, message, label)
    assert not (await polling.callback_answer(tg, since)).get("text")
    [context] = await tg.wait_for_sent(USER, since=sent)
    return context


def utc(when: float | None) -> str:
    assert when is not None
    return f"{dt.datetime.fromtimestamp(when, dt.UTC):%Y-%m-%d %H:%M} UTC"


async def test_the_fixed_index_of_polling_mode_still_tells_about(tg, small_index):
    async with polling.running_bot(tg, small_index):
        about = (await polling.ask(tg, "/about"))["text"]
    assert "Documents: 4" in about and "Segments: 1" in about and "Last update: none since start" in about


async def test_webhook_mode_follows_a_live_index_and_its_metrics_say_so(tg, live, corpus, monkeypatch):
    async with webhook.running_service(tg, live) as service:
        assert isinstance(service.services.index, TimedIndex)
        assert "No quotes found" in (await webhook.ask(tg, service, "lighthouse keeper"))["text"]
        samples = webhook.metric_samples((await webhook.get(service, "/metrics")).text)
        assert samples[("corpus_bot_index_documents", ())] == 3
        opened = live.last_update  # the manifest's time: when the generation in use was made
        assert opened is not None
        assert samples[("corpus_bot_index_last_update_timestamp_seconds", ())] == pytest.approx(opened)

        write(corpus, "d.txt", LIGHTHOUSE)
        await asyncio.to_thread(refresh, live)
        reply = await webhook.ask(tg, service, "lighthouse keeper")
        assert QUOTE in reply["text"]

        write(corpus, "e.txt", BRIDGE)
        (corpus / "b.txt").unlink()
        await asyncio.to_thread(refresh, live)
        context = await webhook_press(tg, service, reply, "Context 1")
        assert context["text"].startswith("📖 Context: 📅 2021-05-05 · The Lighthouse")
        assert polling.bold(context) == [QUOTE]

        (corpus / "d.txt").unlink()
        await asyncio.to_thread(refresh, live)
        since = len(tg.calls)
        response = await webhook.post(tg, service, tg.make_callback_query_update(reply, context_data(
            tg.get_message(USER, reply["message_id"]), "Context 1")))
        assert response.status_code == 200
        [answer] = await tg.wait_for("answerCallbackQuery", since=since)
        assert CHANGED in answer.params["text"]

        def failing(*args: Any, **kwargs: Any) -> Any:
            raise OSError("the cache folder is full")

        monkeypatch.setattr(live, "_bring_up_to_date", failing)
        with pytest.raises(OSError):
            await asyncio.to_thread(live.refresh, settle=0)
        await webhook.eventually(lambda: service.application.update_processor.current_concurrent_updates == 0)
        text = (await webhook.get(service, "/metrics")).text

    samples = webhook.metric_samples(text)

    def value(name: str) -> float:
        return samples[(name, ())]

    stats = live.index.stats
    assert value("corpus_bot_index_documents") == stats.documents == live.documents == 3  # a, c, e
    assert value("corpus_bot_index_sentences") == stats.sentences
    assert value("corpus_bot_index_terms") == stats.terms
    assert value("corpus_bot_index_generation") == live.generation >= 4
    assert value("corpus_bot_index_segments") == len(live.segments) == 2  # (a, c), (e): d's went with it
    assert live.last_update is not None and live.last_update > opened
    assert value("corpus_bot_index_last_update_timestamp_seconds") == pytest.approx(live.last_update)
    assert value("corpus_bot_documents_added_total") == 2  # d, e
    assert value("corpus_bot_documents_removed_total") == 2  # b, d
    assert value("corpus_bot_index_update_errors_total") == 1
    assert value("corpus_bot_search_seconds_count") == 2  # each generation's searches are timed
    assert webhook.index_metric_types(text) == webhook.INDEX_METRIC_TYPES


async def webhook_press(
    tg: FakeTelegram, service: Any, message: dict[str, Any], label: str
) -> dict[str, Any]:
    """Press a button through the webhook; return the message it sent."""
    sent, since = len(tg.sent_messages()), len(tg.calls)
    current = tg.get_message(USER, message["message_id"])
    response = await webhook.post(tg, service, tg.make_callback_query_update(current, context_data(current,
                                                                                                   label)))
    assert response.status_code == 200
    [answer] = await tg.wait_for("answerCallbackQuery", since=since)
    assert not answer.params.get("text")
    [context] = await tg.wait_for_sent(USER, since=sent)
    return context



def test_a_button_made_before_a_merge_still_resolves(tmp_path: Path) -> None:
    from bot.callbacks import address_of, resolve_sentence
    from retrieval import LiveIndex

    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("date 2020-01-01 A\n\nThe harbour was closed.\n", encoding="utf-8")
    live = LiveIndex.open(folder, cache_dir=tmp_path / "cache")
    (folder / "b.txt").write_text("date 2020-01-02 B\n\nThe walrus swam.\n", encoding="utf-8")
    live.refresh(settle=0)
    hit = live.index.search("walrus").hits[0]
    short, local = address_of(hit, "unused")
    live.merge(force=True)
    found = resolve_sentence(live.index, short, local)
    assert found is not None and live.index.hit(found).text == "The walrus swam."

"""Webhook mode end to end: the real service (:class:`bot.webhook.WebhookService`) over real HTTP, with a fake
Bot API server on 127.0.0.1 standing in for Telegram.

Telegram's side of a webhook is played by ``tests.fake_telegram``: it records ``setWebhook`` and the test
POSTs updates to the service the way Telegram (through nginx) would, with the secret token header. Replies
arrive at the fake, which validates them like Telegram. The in-process tests run the service on a free
port; the ``slow`` ones run ``corpus-bot run --mode webhook`` as a subprocess and stop it with SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import webhook
from bot.app import ALLOWED_UPDATES
from bot.cli import main as cli_main
from bot.config import ConfigError, Settings, load_settings
from bot.inbox import Inbox
from bot.webhook import SECRET_HEADER, WebhookService, check_webhook_settings
from retrieval import SearchIndex
from tests.conftest import REPO
from tests.fake_telegram import DEFAULT_TOKEN, DEFAULT_USER_ID, FakeTelegram
from tests.processes import corpus_bot_run, wait_for_http
from tests.test_bot_e2e import running_bot

TOKEN = DEFAULT_TOKEN
SECRET = "Test_webhook-secret_0123456789"
PUBLIC_URL = "https://bot.example.org/telegram"
USER = DEFAULT_USER_ID


# -- harness -------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _secrets_never_logged(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    yield
    for secret in (TOKEN.split(":", 1)[1], SECRET):
        assert secret not in caplog.text


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as server:
        yield server
        server.assert_no_errors()


def webhook_settings(tg: FakeTelegram | None = None, **sections: dict[str, Any]) -> Settings:
    """Default settings for webhook mode on a free loopback port, with ``section={key: value}`` overrides."""
    settings = Settings()
    inbox = Path(tempfile.mkdtemp(prefix="corpus-bot-inbox-")) / "inbox.sqlite3"
    changes: dict[str, dict[str, Any]] = {
        "telegram": {"mode": "webhook", "connect_timeout": 5.0, "read_timeout": 5.0},
        "webhook": {"url": PUBLIC_URL, "port": 0},
        "delivery": {"path": inbox, "private_rate": 0.0, "group_rate": 0.0, "overall_rate": 0.0},
    }
    if tg is not None:
        changes["telegram"]["base_url"] = tg.api_url
    for section, values in sections.items():
        changes.setdefault(section, {}).update(values)
    replaced = {name: dataclasses.replace(getattr(settings, name), **vals) for name, vals in changes.items()}
    return dataclasses.replace(settings, **replaced)


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running_service(
    tg: FakeTelegram, index: Any, settings: Settings | None = None, **options: Any
) -> AsyncIterator[WebhookService]:
    """The service serving until the block ends; then stopped as SIGTERM would (and it must end cleanly)."""
    service = WebhookService(settings or webhook_settings(tg), index, TOKEN, SECRET, **options)
    serving = asyncio.create_task(service.serve())
    try:
        await eventually(lambda: service.ready or serving.done(), timeout=10)
        if serving.done():
            serving.result()
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(serving, timeout=30)


def local_url(service: WebhookService, path: str | None = None) -> str:
    return f"http://127.0.0.1:{service.port}{path or service.settings.webhook.path}"


async def post(
    tg: FakeTelegram, service: WebhookService, update: dict[str, Any], secret: str = SECRET
) -> httpx.Response:
    """POST an update as Telegram would (through nginx: plain HTTP on loopback)."""
    return await tg.post_to_webhook(update, url=local_url(service), secret_token=secret)


async def post_raw(
    service: WebhookService, body: bytes, headers: dict[str, Any] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            local_url(service), content=body, headers={SECRET_HEADER: SECRET, **(headers or {})}
        )


async def ask(
    tg: FakeTelegram, service: WebhookService, text: str, *, user_id: int = USER, timeout: float = 5.0
) -> dict[str, Any]:
    """Post a message update; return the bot's reply to it."""
    sent_before = len(tg.sent_messages())
    response = await post(tg, service, tg.make_message_update(text, user_id=user_id))
    assert response.status_code == 200, response.text
    return (await tg.wait_for_sent(user_id, since=sent_before, timeout=timeout))[0]


async def get(service: WebhookService, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(local_url(service, path))


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` from a Prometheus text exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


INDEX_METRIC_TYPES = {
    "corpus_bot_index_documents": "gauge", "corpus_bot_index_sentences": "gauge",
    "corpus_bot_index_terms": "gauge", "corpus_bot_index_generation": "gauge",
    "corpus_bot_index_segments": "gauge", "corpus_bot_index_last_update_timestamp_seconds": "gauge",
    "corpus_bot_documents_added": "counter", "corpus_bot_documents_removed": "counter",
    "corpus_bot_index_update_errors": "counter",
}  # fmt: skip


def index_metric_types(text: str) -> dict[str, str]:
    """The type of each metric about the index in a Prometheus text exposition."""
    return {f.name: f.type for f in text_string_to_metric_families(text) if f.name in INDEX_METRIC_TYPES}


# -- settings ------------------------------------------------------------------------------------------


SETTINGS_ERRORS = [
    ({"url": None}, {}, "'webhook.url' must be set in webhook mode", "(webhook.url)"),
    ({"url": "http://bot.example.org/telegram"}, {}, "must be an https:// URL", "(webhook.url)"),
    ({"url": "https:///telegram"}, {}, "must be an https:// URL", "(webhook.url)"),
    ({"url": "https://bot.example.org:http/telegram"}, {}, "is not a valid URL", "(webhook.url)"),
    ({"url": "https://bot.example.org/hook"}, {}, "('/hook') must be 'webhook.path'", "(webhook.path)"),
    ({"url": "https://bot.example.org"}, {}, "('/') must be 'webhook.path' ('/telegram')", "(webhook.path)"),
    ({"url": "https://bot.example.org/metrics", "path": "/metrics"}, {}, "cannot be '/metrics'",
     "(webhook.path)"),
    ({}, {"TELEGRAM_WEBHOOK_SECRET": ""}, "TELEGRAM_WEBHOOK_SECRET is not set", "(webhook.secret_token_env)"),
    ({"secret_token_env": "MY_SECRET"}, {"TELEGRAM_WEBHOOK_SECRET": SECRET}, "MY_SECRET is not set",
     "(webhook.secret_token_env)"),
    ({}, {"TELEGRAM_WEBHOOK_SECRET": "has spaces+plus"}, "1-256 characters of A-Z",
     "(webhook.secret_token_env)"),
    ({}, {"TELEGRAM_WEBHOOK_SECRET": "x" * 257}, "1-256 characters", "(webhook.secret_token_env)"),
    ({}, {"TELEGRAM_WEBHOOK_SECRET": "sécret"}, "1-256 characters", "(webhook.secret_token_env)"),
]


@pytest.mark.parametrize(("webhook", "environ", "message", "key"), SETTINGS_ERRORS)
def test_webhook_mode_refuses_unusable_settings_with_one_line(webhook, environ, message, key):
    settings = webhook_settings(webhook=webhook)
    with pytest.raises(ConfigError) as caught:
        check_webhook_settings(settings, environ)
    text = str(caught.value)
    assert message in text and text.endswith(key)
    assert "\n" not in text
    for value in environ.values():
        if value:
            assert value not in text  # the secret is never shown


def test_valid_settings_give_the_secret():
    settings = webhook_settings(webhook={"url": "https://bot.example.org:8443/telegram?x=1"})
    assert check_webhook_settings(settings, {"TELEGRAM_WEBHOOK_SECRET": f" {SECRET}\n"}) == SECRET
    assert check_webhook_settings(settings, {"TELEGRAM_WEBHOOK_SECRET": "a"}) == "a"
    assert check_webhook_settings(settings, {"TELEGRAM_WEBHOOK_SECRET": "A_z-9" * 51 + "x"})


def test_the_cli_checks_webhook_settings_before_loading_the_index(tmp_path, monkeypatch, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(
        "corpus: {path: no-such-folder}\n"  # loading the index would fail with another message
        "webhook: {url: 'http://bot.example.org/telegram'}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", SECRET)
    assert cli_main(["run", "--mode", "webhook", "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("corpus-bot: error: ") and err[0].endswith("(webhook.url)")

    monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET")
    config.write_text("corpus: {path: no-such-folder}\nwebhook: {url: 'https://bot.example.org/telegram'}\n",
                      encoding="utf-8")
    assert cli_main(["run", "--mode", "webhook", "--config", str(config)]) == 1
    assert capsys.readouterr().err.strip().endswith("(webhook.secret_token_env)")


# -- start-up ------------------------------------------------------------------------------------------


async def test_start_up_sets_the_webhook_with_url_secret_and_update_types(tg, small_index):
    settings = webhook_settings(tg, webhook={"max_connections": 7, "drop_pending_updates": True})
    async with running_service(tg, small_index, settings) as service:
        assert tg.webhook == {
            "url": PUBLIC_URL,
            "secret_token": SECRET,
            "max_connections": 7,
            "allowed_updates": [str(kind) for kind in ALLOWED_UPDATES],
            "drop_pending_updates": True,
            "ip_address": None,
            "has_custom_certificate": False,
        }
        assert [c["command"] for c in tg.commands] == ["start", "help", "about", "ask", "timeline"]
        methods = [c.method for c in tg.calls]
        assert methods.index("setMyCommands") < methods.index("setWebhook")  # ready before announced
        assert service.ready
    assert not service.ready
    assert "deleteWebhook" not in [c.method for c in tg.calls]  # Telegram keeps updates while it is down


async def test_readiness_waits_for_the_webhook_and_health_does_not(tg, small_index):
    tg.delay_next("setWebhook", 0.6)
    service = WebhookService(webhook_settings(tg), small_index, TOKEN, SECRET)
    serving = asyncio.create_task(service.serve())
    try:
        await tg.wait_for("setWebhook")  # the HTTP server is up before Telegram is told about it
        health, ready = await get(service, "/healthz"), await get(service, "/readyz")
        assert health.status_code == 200 and health.json() == {"status": "alive"}
        assert ready.status_code == 503 and ready.json() == {"status": "starting"}
        await eventually(lambda: service.ready)
        ready = await get(service, "/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    finally:
        service.stop()
        await serving


async def test_a_rejected_token_or_refused_webhook_stops_start_up_with_one_line(small_index):
    async with FakeTelegram(token=TOKEN, require_https_webhook=True) as strict:
        settings = webhook_settings(strict, webhook={"url": "https://bot.example.org:9999/telegram"})
        with pytest.raises(ConfigError, match=r"Telegram refused the webhook .* ports 80, 88, 443 or 8443 "
                                              r"\(webhook.url\)$"):
            await WebhookService(settings, small_index, TOKEN, SECRET).serve()
        with pytest.raises(ConfigError, match=r"rejected the bot token .*\(telegram.token_env\)$"):
            await WebhookService(settings, small_index, "999:wrong", SECRET).serve()


async def test_a_port_in_use_stops_start_up_with_one_line(tg, small_index):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = webhook_settings(tg, webhook={"port": taken.getsockname()[1]})
        with pytest.raises(ConfigError, match=r"cannot listen on 127.0.0.1:\d+: .*\(webhook.port\)$"):
            await WebhookService(settings, small_index, TOKEN, SECRET).serve()
    assert "setWebhook" not in [c.method for c in tg.calls]


# -- updates -------------------------------------------------------------------------------------------


async def test_a_question_gets_200_at_once_and_the_reply_after(tg, small_index):
    async with running_service(tg, small_index) as service:
        tg.delay_next("sendMessage", 0.5)
        update = tg.make_message_update("lighthouse keeper", user_id=USER)
        started = time.monotonic()
        response = await post(tg, service, update)
        assert response.status_code == 200
        assert time.monotonic() - started < 0.4  # not waiting for the reply to go out
        [reply] = await tg.wait_for_sent(USER)
    assert reply["reply_to_message"]["message_id"] == update["message"]["message_id"]
    assert "1. 📅 2021-03-04 · The Lighthouse Keeper's Log" in reply["text"]


async def test_buttons_and_inline_queries_work_through_the_webhook(tg, small_index):
    async with running_service(tg, small_index) as service:
        reply = await ask(tg, service, "harbour")
        [data] = [b["callback_data"] for row in reply["reply_markup"]["inline_keyboard"] for b in row
                  if b["text"] == "More »"]
        assert (await post(tg, service, tg.make_callback_query_update(reply, data))).status_code == 200
        await tg.wait_for("editMessageText")
        assert tg.get_message(USER, reply["message_id"])["text"].startswith("🔎 Quotes 4–6 of 7")
        assert (await post(tg, service, tg.make_inline_query_update("apples"))).status_code == 200
        [answer] = await tg.wait_for("answerInlineQuery")
    assert "orchard" in answer.params["results"][0]["title"].lower()


async def test_a_wrong_or_missing_secret_gets_403_and_nothing_is_processed(tg, small_index):
    async with running_service(tg, small_index) as service:
        for secret in ["wrong-secret", "", SECRET[:-1], SECRET + "x", SECRET.upper()]:
            response = await post(tg, service, tg.make_message_update("harbour", user_id=USER), secret=secret)
            assert response.status_code == 403, secret
        non_ascii = await post_raw(service, b"{}", headers={SECRET_HEADER: "s\u00e9cret".encode("latin-1")})
        assert non_ascii.status_code == 403
        await asyncio.sleep(0.2)
        assert not tg.sent_messages() and not tg.chat_actions
        assert service.application.update_queue.empty()
        assert "harbour" in (await ask(tg, service, "harbour"))["text"]  # the right secret still works


MALFORMED = [
    b"",
    b"not json",
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'"a string"',
    b'{"message": {"text": "no update_id"}}',
    b'{"update_id": "7", "message": {}}',
    b'{"update_id": true}',
    b'{"update_id": 1, "message": "not a message"}',
    b'{"update_id": 1, "message": {"text": "no chat or date"}}',
    b'{"update_id": 1, "callback_query": 5}',
]


async def test_malformed_bodies_get_400_and_the_service_stays_up(tg, small_index):
    async with running_service(tg, small_index) as service:
        for body in MALFORMED:
            response = await post_raw(service, body, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, body
        too_large = await post_raw(service, b'{"update_id": 1, "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}')
        assert too_large.status_code == 413
        async with httpx.AsyncClient() as client:
            assert (await client.get(local_url(service))).status_code == 405
        assert (await get(service, "/healthz")).status_code == 200
        assert "harbour" in (await ask(tg, service, "harbour"))["text"]
        text = (await get(service, "/metrics")).text
    samples = metric_samples(text)
    assert samples[("corpus_bot_webhook_rejected_total", (("reason", "malformed"),))] == len(MALFORMED)
    assert samples[("corpus_bot_webhook_rejected_total", (("reason", "too_large"),))] == 1


# -- metrics -------------------------------------------------------------------------------------------


async def test_metrics_count_updates_replies_searches_errors_and_the_index(tg, small_index):
    async with running_service(tg, small_index) as service:
        first = await ask(tg, service, "harbour")
        await ask(tg, service, "apples", user_id=515151)
        [data] = [b["callback_data"] for row in first["reply_markup"]["inline_keyboard"] for b in row
                  if b["text"] == "More »"]
        await post(tg, service, tg.make_callback_query_update(first, data))
        await tg.wait_for("editMessageText")
        await post(tg, service, tg.make_inline_query_update("cider"))
        await tg.wait_for("answerInlineQuery")
        await post(tg, service, tg.make_message_update("harbour"), secret="wrong")
        tg.block_bot(616161)
        await post(tg, service, tg.make_message_update("harbour", user_id=616161))
        await eventually(lambda: any(e.method == "sendMessage" for e in tg.errors))
        await eventually(lambda: service.application.update_processor.current_concurrent_updates == 0)
        response = await get(service, "/metrics")
    tg.errors.clear()  # the 403 was provoked on purpose
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = metric_samples(response.text)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("corpus_bot_updates_received_total", type="message") == 3
    assert value("corpus_bot_updates_received_total", type="callback_query") == 1
    assert value("corpus_bot_updates_received_total", type="inline_query") == 1
    assert value("corpus_bot_webhook_rejected_total", reason="secret") == 1
    assert value("corpus_bot_replies_sent_total", method="sendMessage") == 2
    assert value("corpus_bot_replies_sent_total", method="editMessageText") == 1
    assert value("corpus_bot_replies_sent_total", method="answerCallbackQuery") == 1
    assert value("corpus_bot_replies_sent_total", method="answerInlineQuery") == 1
    assert value("corpus_bot_telegram_api_errors_total", method="sendMessage", error="403") == 1
    assert value("corpus_bot_search_seconds_count") == 5  # 3 questions, a page turn, an inline query
    assert value("corpus_bot_search_seconds_bucket", le="+Inf") == 5
    assert 0 < value("corpus_bot_search_seconds_sum") < 5
    stats = small_index.stats
    assert value("corpus_bot_index_documents") == stats.documents == 4
    assert value("corpus_bot_index_sentences") == stats.sentences
    assert value("corpus_bot_index_terms") == stats.terms
    assert value("corpus_bot_ready") == 1
    assert value("corpus_bot_updates_queued") == 0
    # A fixed index: generation 0, one segment, never updated.
    assert ("corpus_bot_index_generation", ()) in samples and value("corpus_bot_index_generation") == 0
    assert value("corpus_bot_index_segments") == 1
    assert value("corpus_bot_index_last_update_timestamp_seconds") == 0
    for counter in ("documents_added", "documents_removed", "index_update_errors"):
        assert (f"corpus_bot_{counter}_total", ()) in samples and value(f"corpus_bot_{counter}_total") == 0
    assert index_metric_types(response.text) == INDEX_METRIC_TYPES


async def test_an_update_posted_twice_is_answered_once(tg, small_index):
    async with running_service(tg, small_index) as service:
        update = tg.make_message_update("harbour")
        assert (await post(tg, service, update)).status_code == 200
        await tg.wait_for_sent(USER)
        assert (await post(tg, service, update)).status_code == 200  # Telegram thought it was lost
        assert "apples" in (await ask(tg, service, "apples"))["text"]
    assert len(tg.sent_messages(USER)) == 2


async def test_an_outage_shows_in_readyz_and_the_metrics_then_every_answer_arrives(
    tg, small_index, monkeypatch
):
    monkeypatch.setattr(webhook, "UNREACHABLE_AFTER", 0.5)
    async with running_service(tg, small_index) as service:
        tg.outage(4)
        for user in (700_001, 700_002, 700_003):
            await post(tg, service, tg.make_message_update("harbour", user_id=user))
        await tg.wait_for("sendMessage", count=6)
        await asyncio.sleep(0.6)
        ready = await get(service, "/readyz")
        samples = metric_samples((await get(service, "/metrics")).text)
        await tg.wait_for_sent(count=3, timeout=15)
        await eventually(lambda: service.inbox.depth() == 0)
        after = metric_samples((await get(service, "/metrics")).text)
        assert (await get(service, "/readyz")).status_code == 200
    assert ready.status_code == 503 and "the Bot API has been unreachable" in ready.json()["status"]
    assert samples[("corpus_bot_inbox_depth", ())] == 3
    assert samples[("corpus_bot_inbox_oldest_age_seconds", ())] > 0.5
    assert samples[("corpus_bot_delivery_retries_total", (("cause", "server"),))] >= 3
    assert samples[("corpus_bot_bot_api_unreachable_seconds", ())] > 0.5
    assert after[("corpus_bot_inbox_depth", ())] == 0
    assert after[("corpus_bot_answers_given_up_total", ())] == 0
    assert after[("corpus_bot_bot_api_unreachable_seconds", ())] == 0


async def test_two_services_in_one_process_keep_their_own_metrics(tg, small_index):
    async with running_service(tg, small_index) as one, running_service(tg, small_index) as two:
        await ask(tg, one, "harbour")
        one_text, two_text = (await get(one, "/metrics")).text, (await get(two, "/metrics")).text
    key = ("corpus_bot_updates_received_total", (("type", "message"),))
    assert metric_samples(one_text)[key] == 1
    assert key not in metric_samples(two_text)


# -- stopping ------------------------------------------------------------------------------------------


async def test_stopping_answers_every_update_that_got_200(tg, small_index):
    users = [700_001 + i for i in range(6)]
    async with running_service(tg, small_index) as service:
        tg.delay_next("sendMessage", 0.8, times=len(users))
        for user in users:
            response = await post(tg, service, tg.make_message_update("harbour", user_id=user))
            assert response.status_code == 200
        await tg.wait_for("sendMessage", count=1)
        assert len(tg.sent_messages()) == 0  # all still in flight when the service is told to stop
    # running_service stopped it: by now every reply has been delivered
    assert sorted(m["chat"]["id"] for m in tg.sent_messages()) == users
    with pytest.raises(httpx.ConnectError):
        await get(service, "/healthz")


async def test_stopping_waits_only_so_long_and_keeps_the_rest_for_the_next_start(tg, small_index, caplog):
    settings = webhook_settings(tg)
    async with running_service(tg, small_index, settings=settings, drain_timeout=0.2) as service:
        tg.outage(30)  # the answer is being retried, not on its way, when the drain time is up
        await post(tg, service, tg.make_message_update("harbour"))
        await tg.wait_for("sendMessage")
        started = time.monotonic()
    tg.end_outage()
    assert time.monotonic() - started < 1.0
    assert any("0 of 1 update(s) in hand finished; 1 left in the inbox" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
    assert Inbox.open(settings.inbox_path).depth() == 1
    before = len(tg.sent_messages(USER))
    async with running_service(tg, small_index, settings=settings):
        await tg.wait_for_sent(USER, since=before, timeout=5)  # answered first thing on the next start
    assert Inbox.open(settings.inbox_path).depth() == 0


async def test_an_answer_on_its_way_when_the_drain_time_is_up_may_still_arrive(tg, small_index, caplog):
    settings = webhook_settings(tg)
    async with running_service(tg, small_index, settings=settings, drain_timeout=0.2) as service:
        tg.delay_next("sendMessage", 1.2)  # sent, and Telegram takes its time to answer
        await post(tg, service, tg.make_message_update("harbour"))
        await tg.wait_for("sendMessage")
        started = time.monotonic()
    assert 0.9 < time.monotonic() - started < 5
    assert any("1 update(s) in hand, all 1 finished" in r.getMessage() for r in caplog.records)
    assert Inbox.open(settings.inbox_path).counts() == {"answered": 1}  # not sent again after a restart
    assert len(tg.sent_messages(USER)) == 1


# -- the same bot in both modes ------------------------------------------------------------------------


QUESTIONS = ["harbour", "lighthouse keeper", "lighthuose", "submarine cable after:2020", "/about", "/start"]


async def _replies_by_polling(index: SearchIndex) -> list[dict[str, Any]]:
    async with FakeTelegram(token=TOKEN) as tg:
        async with running_bot(tg, index, webhook_settings(tg)):
            replies = []
            for question in QUESTIONS:
                before = len(tg.sent_messages())
                tg.message(question, user_id=USER)
                replies.append((await tg.wait_for_sent(USER, since=before))[0])
        tg.assert_no_errors()
    return replies


async def _replies_by_webhook(index: SearchIndex) -> list[dict[str, Any]]:
    async with FakeTelegram(token=TOKEN) as tg, running_service(tg, index) as service:
        replies = [await ask(tg, service, question) for question in QUESTIONS]
        tg.assert_no_errors()
    return replies


async def test_polling_and_webhook_give_the_same_reply_to_the_same_question(small_index):
    polled, hooked = await _replies_by_polling(small_index), await _replies_by_webhook(small_index)
    for question, by_polling, by_webhook in zip(QUESTIONS, polled, hooked, strict=True):
        for field in ("text", "entities", "reply_markup"):
            assert by_polling.get(field) == by_webhook.get(field), (question, field)
        assert by_webhook["text"]


async def test_switching_back_to_polling_removes_the_webhook_and_keeps_answering(tg, small_index):
    async with running_service(tg, small_index) as service:
        await ask(tg, service, "harbour")
    assert tg.webhook["url"] == PUBLIC_URL  # still set: Telegram keeps updates for the next start
    tg.message("lighthouse keeper", user_id=USER)  # arrives while no one is serving
    async with running_bot(tg, small_index, webhook_settings(tg)):
        [reply] = await tg.wait_for_sent(USER, since=1)
    assert tg.webhook["url"] == ""  # polling called deleteWebhook
    assert "Lighthouse Keeper" in reply["text"]


# -- the real command, stopped by SIGTERM --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(path: Path, tg: FakeTelegram, port: int, cache: Path) -> Path:
    path.write_text(
        f"corpus: {{path: {REPO / 'corpus'}}}\n"
        f"index: {{cache_dir: {cache}}}\n"
        f"telegram: {{base_url: '{tg.api_url}', mode: webhook}}\n"
        f"webhook: {{port: {port}, url: '{PUBLIC_URL}'}}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
def test_corpus_bot_run_webhook_answers_then_drains_on_sigterm_and_exits_0(tmp_path):
    port = free_port()
    users = [800_001 + i for i in range(5)]
    with FakeTelegram(token=TOKEN) as tg:
        config = write_config(tmp_path / "config.yaml", tg, port, tmp_path / "cache")
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET}
        with corpus_bot_run("--mode", "webhook", "--config", str(config), env=env) as process:
            wait_for_http(f"http://127.0.0.1:{port}/readyz", process=process)
            assert tg.webhook["url"] == PUBLIC_URL and tg.webhook["secret_token"] == SECRET
            tg.delay_next("sendMessage", 1.0, times=len(users))
            headers = {SECRET_HEADER: SECRET}
            for user in users:
                update = tg.make_message_update("basic research", user_id=user)
                response = httpx.post(f"http://127.0.0.1:{port}/telegram", json=update, headers=headers)
                assert response.status_code == 200
            tg.wait_for_blocking("sendMessage", timeout=10)
            assert not tg.sent_messages()  # every reply is still held by the fake
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
        tg.assert_no_errors()
        replies = tg.sent_messages()
    assert process.returncode == 0, stderr
    assert sorted(m["chat"]["id"] for m in replies) == users
    assert all("2023-08-05" in m["text"] for m in replies)
    for secret in (SECRET, TOKEN.split(":", 1)[1]):
        assert secret not in stderr
    assert "webhook service ready" in stderr and "stopped: 5 update(s) in hand, all 5 finished" in stderr
    assert "SIGTERM received" in stderr
    assert not [line for line in stderr.splitlines() if " ERROR " in line or "Traceback" in line], stderr


@pytest.mark.slow
def test_corpus_bot_run_webhook_without_a_secret_stops_with_one_line(tmp_path):
    with FakeTelegram(token=TOKEN) as tg:
        config = write_config(tmp_path / "config.yaml", tg, free_port(), tmp_path / "cache")
        env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_WEBHOOK_SECRET"}
        done = subprocess.run(
            [sys.executable, "-m", "bot", "run", "--mode", "webhook", "--config", str(config)],
            cwd=REPO, env={**env, "TELEGRAM_BOT_TOKEN": TOKEN}, capture_output=True, text=True, timeout=60,
        )
        assert not tg.calls  # nothing was asked of Telegram
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "corpus-bot: error: environment variable TELEGRAM_WEBHOOK_SECRET is not set: webhook mode needs a "
        "secret token, e.g. from `openssl rand -hex 32` (webhook.secret_token_env)"
    ]


def test_the_shipped_config_documents_every_webhook_key():
    settings = load_settings(REPO / "config.yaml")
    shipped = (REPO / "config.yaml").read_text(encoding="utf-8")
    for field in dataclasses.fields(settings.webhook):
        assert f"  {field.name}:" in shipped


# -- hostile clients and systemd -----------------------------------------------------------------------


async def test_deeply_nested_json_is_a_bad_request_not_a_crash(tg, small_index, caplog):
    async with running_service(tg, small_index) as service:
        response = await post_raw(service, b"[" * 100_000 + b"]" * 100_000)
        nested = await post_raw(service, b'{"update_id": 1, "message": ' + b'{"a": ' * 5000 + b"1"
                                + b"}" * 5000 + b"}")
        assert "harbour" in (await ask(tg, service, "harbour"))["text"]
    assert response.status_code == 400 and response.json()["error"] == "body is not JSON"
    assert nested.status_code == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def _send_slowly(port: int, path: str, body: bytes, *, declared: int, pause: float) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {declared}\r\n{SECRET_HEADER}: {SECRET}\r\n\r\n".encode() + body)
        await writer.drain()
        await asyncio.sleep(pause)
        return await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()


async def test_a_body_that_never_ends_gets_408_and_a_vanished_client_no_traceback(
    tg, small_index, caplog, monkeypatch
):
    monkeypatch.setattr(webhook, "BODY_TIMEOUT", 0.3)
    async with running_service(tg, small_index) as service:
        answer = await _send_slowly(service.port, service.settings.webhook.path, b'{"update_id":',
                                    declared=500, pause=0.6)
        _, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(f"POST {service.settings.webhook.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
                     f"{SECRET_HEADER}: {SECRET}\r\n\r\n{{\"update".encode())
        await writer.drain()
        writer.close()  # gone mid-body
        await asyncio.sleep(0.3)
        assert "harbour" in (await ask(tg, service, "harbour"))["text"]
    assert answer.startswith(b"HTTP/1.1 408")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_the_server_limits_connections_at_once(small_index):
    service = WebhookService(webhook_settings(), small_index, TOKEN, SECRET)
    config = service._uvicorn_config()
    assert config.limit_concurrency == webhook.MAX_CONCURRENCY
    assert config.timeout_keep_alive == webhook.KEEP_ALIVE


async def test_systemd_hears_ready_once_the_webhook_is_set_and_stopping_at_the_end(
    tg, small_index, tmp_path, monkeypatch
):
    address = str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    try:
        async with running_service(tg, small_index) as service:
            assert service.ready
            first = listener.recv(4096).decode()
        last = listener.recv(4096).decode()
    finally:
        listener.close()
    assert first.splitlines() == ["READY=1", f"STATUS=answering at {PUBLIC_URL}"]
    assert last == "STOPPING=1"
    assert tg.webhook["url"] == PUBLIC_URL

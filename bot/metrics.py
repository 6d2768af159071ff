"""What the webhook service counts, for ``GET /metrics`` (Prometheus text format).

An operator watching a bot wants to know four things: are updates arriving (and of which kind), are answers
going out, is the search fast, and is Telegram refusing anything. Those numbers are gathered where they
happen without the handlers knowing about them:

* updates received: counted by the webhook endpoint as it accepts them (:mod:`bot.webhook`);
* replies sent and Telegram API errors: :class:`MetricsRequest`, the HTTP client every Bot API call goes
  through (given to ``build_application(..., request=...)``);
* search latency: :class:`TimedIndex`, a stand-in for the ``SearchIndex`` that times ``search`` (one per
  generation of a live index);
* the index: its size, generation, segments and updates, read at each scrape from the generation in use
  (:meth:`BotMetrics.track_index`).

Each :class:`BotMetrics` has a registry of its own rather than prometheus_client's global one, so several
services (tests, benchmarks) can live in one process without "duplicated timeseries" errors.

    metrics = BotMetrics()
    application = build_application(settings, live, token, wrap=lambda i: TimedIndex(i, metrics),
                                    request=MetricsRequest(metrics, **bot.app.request_options(settings)))
    services = application.bot_data[bot.handlers.SERVICES_KEY]
    metrics.track_index(lambda: services.index, services.stats_of, services.status)
    metrics.track_meaning(lambda: services.index)
    body = metrics.exposition()        # bytes for GET /metrics, media type metrics.CONTENT_TYPE
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from telegram import Update
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

from bot.delivery import RETRY_CAUSES
from bot.http_client import AiohttpRequest

if TYPE_CHECKING:
    from bot.delivery import DeliveryLimiter
    from bot.handlers import IndexStatus
    from bot.inbox import Inbox
    from bot.processing import OrderedUpdateProcessor
    from retrieval import IndexStats, SearchIndex, SearchResult

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Bot API methods that carry an answer to a user. Every other method (getMe, setWebhook, sendChatAction…)
# is housekeeping and is not a "reply".
REPLY_METHODS = frozenset({
    "sendMessage", "sendPhoto", "editMessageText", "editMessageReplyMarkup", "answerInlineQuery",
    "answerCallbackQuery",
})  # fmt: skip
# Label values are bounded: a body from the network never invents a new time series.
UPDATE_TYPES = frozenset(str(kind) for kind in Update.ALL_TYPES)
SEARCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class BotMetrics:
    """The service's counters, gauges and histogram, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.updates_received = Counter(
            "corpus_bot_updates_received", "Updates accepted from Telegram, by type", ["type"], registry=r
        )
        self.webhook_rejected = Counter(
            "corpus_bot_webhook_rejected",
            "Webhook requests refused, by reason (secret, malformed, too_large, slow, disconnected, "
            "not_running)",
            ["reason"],
            registry=r,
        )
        self.replies_sent = Counter(
            "corpus_bot_replies_sent", "Answers Telegram accepted, by Bot API method", ["method"], registry=r
        )
        self.api_errors = Counter(
            "corpus_bot_telegram_api_errors",
            "Failed Bot API calls, by method and error (HTTP status, timeout or network)",
            ["method", "error"],
            registry=r,
        )
        self.search_seconds = Histogram(
            "corpus_bot_search_seconds", "Time to answer one search", buckets=SEARCH_BUCKETS, registry=r
        )
        self.semantic_embedded = Gauge(
            "corpus_bot_semantic_sentences_embedded", "Sentences embedded for ranking by meaning", registry=r
        )
        self.semantic_ready = Gauge(
            "corpus_bot_semantic_ready", "1 when ranking by meaning is in use, 0 while it is prepared or off",
            registry=r,
        )
        self.ready = Gauge("corpus_bot_ready", "1 when the webhook is set and updates handled", registry=r)
        self.updates_queued = Gauge(
            "corpus_bot_updates_queued", "Accepted updates waiting to be handled", registry=r
        )
        self.updates_in_progress = Gauge(
            "corpus_bot_updates_in_progress", "Updates being handled right now", registry=r
        )
        for kind in ("secret", "malformed", "too_large", "slow", "disconnected", "not_running"):
            self.webhook_rejected.labels(kind)  # present (at 0) from the start, so alerts can use rate()

    def track_index(
        self,
        current: Callable[[], SearchIndex],
        stats: Callable[[SearchIndex], IndexStats],
        status: Callable[[SearchIndex], IndexStatus],
    ) -> None:
        """Report the index at every scrape: ``current()`` is the generation in use (read once per
        scrape), ``stats`` and ``status`` what to say of it (see ``bot.handlers.Services``)."""
        self.registry.register(_IndexCollector(current, stats, status))

    def track_meaning(self, current: Callable[[], SearchIndex]) -> None:
        """Read the progress of the sentence embeddings (built in the background) of the generation in
        use, ``current()``, at every scrape."""
        self.semantic_embedded.set_function(lambda: float((current().semantic_progress or (0, 0))[0]))
        self.semantic_ready.set_function(lambda: float(current().semantic_ready))

    def track_queue(self, queued: Callable[[], float], in_progress: Callable[[], float]) -> None:
        """Read the queue length and the updates in progress whenever the metrics are scraped."""
        self.updates_queued.set_function(queued)
        self.updates_in_progress.set_function(in_progress)

    def track_delivery(
        self, inbox: Inbox, limiter: DeliveryLimiter, processor: OrderedUpdateProcessor
    ) -> None:
        """Report the inbox, the retries and the late or lost answers at every scrape."""
        self.registry.register(_DeliveryCollector(inbox, limiter, processor))

    def count_update(self, kind: str) -> None:
        self.updates_received.labels(kind if kind in UPDATE_TYPES else "other").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _IndexCollector(Collector):
    """The index in use, read at each scrape: a live index changes under the bot."""

    def __init__(
        self,
        current: Callable[[], SearchIndex],
        stats: Callable[[SearchIndex], IndexStats],
        status: Callable[[SearchIndex], IndexStatus],
    ) -> None:
        self._current, self._stats, self._status = current, stats, status

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        index = self._current()
        stats, status = self._stats(index), self._status(index)
        yield GaugeMetricFamily("corpus_bot_index_documents", "Documents in the index",
                                value=stats.documents)
        yield GaugeMetricFamily("corpus_bot_index_sentences", "Sentences in the index",
                                value=stats.sentences)
        yield GaugeMetricFamily("corpus_bot_index_terms", "Distinct terms in the index", value=stats.terms)
        yield GaugeMetricFamily("corpus_bot_index_generation",
                                "Generation of the index in use (grows with each update; 0: a fixed index)",
                                value=status.generation)
        yield GaugeMetricFamily("corpus_bot_index_segments", "Segments the index in use is made of",
                                value=status.segments)
        yield GaugeMetricFamily("corpus_bot_index_last_update_timestamp_seconds",
                                "Unix time the index in use was made (0: never updated)",
                                value=status.last_update or 0.0)
        yield CounterMetricFamily("corpus_bot_documents_added",
                                  "Documents put live by updates since start (changed ones too)",
                                  value=status.documents_added)
        yield CounterMetricFamily("corpus_bot_documents_removed",
                                  "Documents taken out by updates since start (changed ones too)",
                                  value=status.documents_removed)
        yield CounterMetricFamily("corpus_bot_index_update_errors",
                                  "Updates of the index that failed (the index in use stayed as it was)",
                                  value=status.update_errors)


class _DeliveryCollector(Collector):
    """Read at each scrape from where the numbers live: the inbox, the limiter and the processor."""

    def __init__(self, inbox: Inbox, limiter: DeliveryLimiter, processor: OrderedUpdateProcessor) -> None:
        self._inbox, self._limiter, self._processor = inbox, limiter, processor

    def describe(self) -> list[Metric]:
        return []  # the names are fixed; no need to collect once at registration

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("corpus_bot_inbox_depth", "Updates kept in the inbox and not yet answered",
                                value=self._inbox.depth())
        yield GaugeMetricFamily("corpus_bot_inbox_oldest_age_seconds",
                                "How long the oldest unanswered update has waited",
                                value=self._inbox.oldest_age())
        counts = self._limiter.counts
        retries = CounterMetricFamily("corpus_bot_delivery_retries",
                                      "Bot API calls of an answer tried again, by cause", labels=["cause"])
        for cause in RETRY_CAUSES:
            retries.add_metric([cause], counts[f"retry_{cause}"])
        yield retries
        handled = self._processor.counts
        yield CounterMetricFamily("corpus_bot_answers_given_up",
                                  "Answers not delivered within delivery.retry_for (should stay 0)",
                                  value=handled["given_up"])
        yield CounterMetricFamily("corpus_bot_answers_late",
                                  "Questions answered later than delivery.max_age, with a note",
                                  value=handled["late"])
        yield CounterMetricFamily("corpus_bot_updates_dropped_late",
                                  "Questions older than delivery.max_age dropped (delivery.late: drop)",
                                  value=handled["dropped_late"])
        yield GaugeMetricFamily("corpus_bot_bot_api_unreachable_seconds",
                                "Seconds the Bot API has been failing (0 while it answers)",
                                value=self._limiter.failing_for())


class MetricsRequest(AiohttpRequest):
    """The bot's HTTP client (:class:`~bot.http_client.AiohttpRequest`), counting answers that went out
    and calls that failed.

    It sees every attempt, retries included, so an error that a retry then cured still shows: that is what
    an operator wants to know about a flaky network or flood control.
    """

    __slots__ = ("_metrics",)

    def __init__(self, metrics: BotMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics

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
        api_method = url.rsplit("/", 1)[-1]  # ".../bot<token>/sendMessage": never the token
        try:
            status, payload = await super().do_request(
                url,
                method,
                request_data,
                read_timeout=read_timeout,
                write_timeout=write_timeout,
                connect_timeout=connect_timeout,
                pool_timeout=pool_timeout,
            )
        except TimedOut:
            self._metrics.api_errors.labels(api_method, "timeout").inc()
            raise
        except NetworkError:
            self._metrics.api_errors.labels(api_method, "network").inc()
            raise
        if status >= 300:
            self._metrics.api_errors.labels(api_method, str(status)).inc()
        elif api_method in REPLY_METHODS:
            self._metrics.replies_sent.labels(api_method).inc()
        return status, payload


class TimedIndex:
    """A ``SearchIndex`` whose ``search`` calls are timed into ``corpus_bot_search_seconds``.

    Everything else is the index's own (``stats``, ``context``, ``fingerprint``…). Some ``search`` calls
    run in worker threads; prometheus_client's histograms are thread-safe. A live index needs one per
    generation: ``build_application(..., wrap=lambda index: TimedIndex(index, metrics))``.
    """

    def __init__(self, index: SearchIndex, metrics: BotMetrics) -> None:
        self._index = index
        self._histogram = metrics.search_seconds

    def search(self, question: str, k: int = 5, offset: int = 0) -> SearchResult:
        started = time.perf_counter()
        try:
            return self._index.search(question, k, offset)
        finally:
            self._histogram.observe(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)

"""Delivery benchmark: is any question lost, or answered twice, through outages, floods, crashes and restarts?

Usage (from the repository root, in the project's virtualenv)::

    python benchmarks/bench_delivery.py --quick                        # a smoke run, ~10 minutes
    python benchmarks/bench_delivery.py                                # every scenario but outage300
    python benchmarks/bench_delivery.py --modes webhook --scenarios kill9,sigterm --workdir /tmp/dl
    python benchmarks/bench_delivery.py --scenarios outage300          # the 5-minute outage (~12 minutes)

Every run is the real service, ``python -m bot run --mode MODE --config CONFIG`` (after ``corpus-bot
index`` has built the index cache of the shipped corpus once), against the fake Bot API
(``tests.fake_telegram``) in a process of its own that this script drives through a pipe: it injects the
faults (``set_faults``, ``outage``, ``enforce_flood_control``, ``delay_next``) and records every message
the bot sends. Each run has a fresh fake, a fresh port and a fresh inbox (``delivery.path`` in the run's
folder); restarts within a run keep the config and the inbox, as a service manager would.

Questions are messages from a handful of users, each a question about the shipped article that finds
something, asked in private chats. A reply is matched to its question by ``reply_parameters.message_id``
and the chat (the bot quotes the question it answers); a sent reply that matches no question is counted
as "unmatched". A run asks its questions, then waits until every question has an answer (and, in webhook
mode, every update was acknowledged) plus ``GRACE`` seconds for late duplicates, or until its settle time
is over. Then: **lost** = questions without any reply, **duplicated** = questions answered more than once
(**extra** = the replies beyond the first), **last answer** = seconds from the first question to the first
answer of the last question answered.

The two modes:

* ``polling``: updates are queued in the fake (``tg.message``) and the bot pulls them with getUpdates;
  an update fetched but not confirmed by the next offset is handed out again, as by Telegram.
* ``webhook``: this script plays Telegram's part and POSTs each update to the service with the secret
  the bot registered with setWebhook (read from the fake; the registered URL is the public one, so the
  POST goes to its path on the service's loopback port, as nginx would pass it). Like Telegram it
  redelivers an update (backoff 0.25 s doubling to 2 s, one attempt at a time per update, at most 40 in
  parallel) until it gets HTTP 200, across kills and restarts of the bot too.

Scenarios (flood control is on in all of them, as at Telegram: 1 message/s to a private chat, 20/min to
a group, 30/s overall; faults start once the bot is ready):

* ``mix``: 15 % of the calls answered 502, 8 % dropped connections ("before": not carried out), 18
  questions from 6 users over ~3 s; one run per seed (``--seeds``).
* ``dropafter``: the same, but the drops come after Telegram acted (the message is sent, the bot cannot
  know): duplicates are expected here, losses are not.
* ``outage20`` / ``outage300``: sendMessage answers 502 (variant ``502``) or drops the connection
  (``drop``) for 20 s / 300 s; 10 questions from 10 users arrive during the first half of the outage.
  ``outage300`` only runs when named in ``--scenarios``.
* ``burst``: 8 questions at once from one user. ``crowd``: 50 users ask 10 questions each, in 10 rounds
  0.5 s apart (100 questions/s offered against 30 answers/s allowed).
* ``kill9``: every sendMessage takes 100-300 ms, 4 questions a second from 40 users; ``kill -9`` of the
  bot at a random moment (1.5-5 s after it got ready), immediate restart, ``--kills`` times; at most one
  duplicate per kill is expected (an answer sent just before the kill, not yet marked in the inbox).
* ``sigterm``: every sendMessage takes 5 s, 50 questions from 50 users are accepted, SIGTERM once the
  first reply is on its way; the exit code and the time to exit are recorded, then a restart answers
  the rest.

Progress and each run's line go to stderr; the tables and the machine line to stdout. Every child process
(the bot in a process group of its own, the fake) is killed on the way out, Ctrl-C included, and every
wait has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import ctypes
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench_webhook import (  # noqa: E402 (the path above first)
    SECRET_HEADER,
    SHIPPED_QUESTIONS,
    TOKEN,
    build_index,
    free_port,
    log,
    machine_line,
    service_env,
)

PUBLIC_URL = "https://bot.example.org/telegram"  # what the bot registers; the POSTs go to loopback
MODES = ("polling", "webhook")
SCENARIOS = ("mix", "outage20", "outage300", "burst", "crowd", "kill9", "sigterm", "dropafter")
DEFAULT_SCENARIOS = tuple(s for s in SCENARIOS if s != "outage300")
FIRST_USER = 20_000_000
GRACE = 5.0  # seconds a run keeps watching after everything was answered, for late duplicates
START_TIMEOUT = 120.0  # seconds for the bot to get ready (index load, getMe, setWebhook / first poll)
RPC_TIMEOUT = 30.0  # seconds for the fake to answer one command
STOP_TIMEOUT = 60.0  # seconds from SIGTERM to exit before the bot is killed (drain_timeout is 25)
POST_TIMEOUT = 10.0  # seconds for one webhook POST
MAX_PARALLEL_POSTS = 40  # Telegram's default max_connections
START_RETRY_WAIT = 60.0  # seconds before a run whose bot did not start is repeated (--start-retries)
MIX_FAULTS = {"server_error": 0.15, "drop": 0.08}


# -- the fake Bot API, in a process of its own, driven through a pipe ---------------------------------


def fake_main(conn: Any) -> None:
    """Serve the fake Bot API (flood control on); answer ``(name, args, kwargs)`` commands on ``conn``.

    A command calls the fake's method ``name`` (or reads the attribute) and sends back ``("ok", result)``
    or ``("error", text)``. The loop, and the process, ends on ``("_quit", ...)`` or when the pipe closes
    (the benchmark is gone).
    """
    from tests.fake_telegram import FakeTelegram

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the benchmark's to handle: it closes the pipe

    class BenchFake(FakeTelegram):
        """The fake, plus a log of the replies (chat, quoted message id, monotonic time) and summaries."""

        def __init__(self) -> None:
            super().__init__(token=TOKEN, flood_control=True)
            self.reply_log: list[tuple[int, int | None, float]] = []

        def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
            message = super()._send_message(params)  # runs under the fake's lock
            quoted = params.get("reply_parameters") or {}
            quoted_id = quoted.get("message_id") if isinstance(quoted, dict) else None
            self.reply_log.append((message["chat"]["id"], quoted_id, time.monotonic()))
            return message

        def bench_replies(self, since: int) -> list[tuple[int, int | None, float]]:
            with self._lock:
                return self.reply_log[since:]

        def bench_count(self, method: str) -> int:
            with self._lock:
                return sum(1 for call in self.calls if call.method == method)

        def bench_faults(self) -> dict[str, int]:
            with self._lock:
                descriptions = [i.description for i in self.injected]
            kinds: Counter[str] = Counter()
            for text in descriptions:
                if text.startswith("connection dropped before"):
                    kinds["drop"] += 1
                elif text.startswith("connection dropped after"):
                    kinds["drop-after"] += 1
                elif not text.startswith("Too Many Requests"):
                    kinds["5xx"] += 1
            for limit, count in self.flood_refusals.items():  # 429s, by the limit that refused
                kinds[f"429 {limit}"] += count
            return dict(kinds)

        def bench_random_delays(self, method: str, low: float, high: float, count: int, seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(count):
                self.delay_next(method, rng.uniform(low, high))

    tg = BenchFake().start_in_thread()
    conn.send(tg.port)
    try:
        while True:
            try:
                name, args, kwargs = conn.recv()
            except (EOFError, OSError):
                break
            if name == "_quit":
                break
            try:
                attribute = getattr(tg, name)
                result = attribute(*args, **kwargs) if callable(attribute) else attribute
                conn.send(("ok", result))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        tg.stop()


class FakeApi:
    """The benchmark's handle on the fake's process: ``fake("method", *args)`` runs it there."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(target=fake_main, args=(child,), name="fake-telegram", daemon=True)
        self.process.start()
        child.close()
        FAKES.add(self)
        if not self._conn.poll(60):
            self.close()
            raise RuntimeError("the fake Bot API did not start within 60 s")
        self.port: int = self._conn.recv()

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self._conn.send((name, args, kwargs))
        if not self._conn.poll(RPC_TIMEOUT):
            raise RuntimeError(f"the fake Bot API did not answer {name} within {RPC_TIMEOUT:g} s")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"the fake Bot API failed on {name}: {value}")
        return value

    def close(self) -> None:
        FAKES.discard(self)
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(("_quit", (), {}))
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._conn.close()


# -- the bot, as a process of its own ------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the benchmark dies (Linux), so no bot is left behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class BotProcess:
    """``python -m bot run --mode MODE --config CONFIG``, restartable, in a process group of its own."""

    def __init__(self, config: Path, mode: str, port: int, log_path: Path, fake: FakeApi) -> None:
        self.config, self.mode, self.port, self.log_path, self.fake = config, mode, port, log_path, fake
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self._polls_before = self.fake("bench_count", "getUpdates") if self.mode == "polling" else 0
        with self.log_path.open("ab") as sink:
            sink.write(f"\n===== start {self.starts} =====\n".encode())
            sink.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--mode", self.mode, "--config", str(self.config)],
                cwd=ROOT, env=service_env(), stdout=sink, stderr=sink, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        BOTS.add(self)

    async def ready(self, timeout: float = START_TIMEOUT) -> float:
        """Wait until the bot serves (webhook: /readyz is 200; polling: it polled); the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    code = None if self.process is None else self.process.returncode
                    raise BotFailed(f"the bot exited with {code} while starting: {self.log_tail()}")
                if self.mode == "polling":
                    if self.fake("bench_count", "getUpdates") > self._polls_before:
                        return time.monotonic() - started
                else:
                    with contextlib.suppress(httpx.HTTPError):
                        response = await client.get(f"http://127.0.0.1:{self.port}/readyz")
                        if response.status_code == 200:
                            return time.monotonic() - started
                await asyncio.sleep(0.1)
        raise BotFailed(f"the bot was not ready within {timeout:g} s: {self.log_tail()}")

    def kill9(self) -> None:
        """``kill -9`` (the whole process group: whatever the bot started dies with it)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)

    async def terminate(self, timeout: float = STOP_TIMEOUT) -> tuple[int | None, float]:
        """SIGTERM and wait: (exit code, or None when it had to be killed after ``timeout``; seconds)."""
        process = self.process
        if process is None or process.poll() is not None:
            return (None if process is None else process.returncode), 0.0
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        while process.poll() is None and time.monotonic() - started < timeout:
            await asyncio.sleep(0.05)
        if process.poll() is None:
            self.kill9()
            return None, time.monotonic() - started
        return process.returncode, time.monotonic() - started

    def cleanup(self) -> None:
        self.kill9()
        BOTS.discard(self)

    def log_tail(self, lines: int = 6) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


class BotFailed(Exception):
    """The bot did not start (or died while starting)."""


BOTS: set[BotProcess] = set()
FAKES: set[FakeApi] = set()


def kill_children() -> None:
    for bot in list(BOTS):
        bot.cleanup()
    for fake in list(FAKES):
        fake.close()


# -- Telegram's side of a webhook ----------------------------------------------------------------------


class WebhookDeliverer:
    """POSTs updates to the bot until each gets a 200, like Telegram (see the module docstring)."""

    def __init__(self, fake: FakeApi, port: int) -> None:
        self.fake, self.port = fake, port
        self.client = httpx.AsyncClient(timeout=POST_TIMEOUT, limits=httpx.Limits(max_connections=100))
        self.parallel = asyncio.Semaphore(MAX_PARALLEL_POSTS)
        self.tasks: list[asyncio.Task[None]] = []
        self.acked: dict[int, float] = {}
        self.refused = 0  # attempts that got no 200 (connection refused, 5xx, timeout...)
        self.give_up_at = float("inf")
        self._target: tuple[str, dict[str, str]] | None = None

    def target(self) -> tuple[str, dict[str, str]] | None:
        if self._target is None:
            webhook = self.fake("webhook")
            if webhook.get("url"):
                path = urlsplit(webhook["url"]).path or "/"
                headers = {"Content-Type": "application/json"}
                if webhook.get("secret_token"):
                    headers[SECRET_HEADER] = webhook["secret_token"]
                self._target = (f"http://127.0.0.1:{self.port}{path}", headers)
        return self._target

    def deliver(self, update: dict[str, Any]) -> None:
        self.tasks.append(asyncio.create_task(self._deliver(update)))

    async def _deliver(self, update: dict[str, Any]) -> None:
        backoff = 0.25
        while time.monotonic() < self.give_up_at:
            target = self.target()
            if target is not None:
                url, headers = target
                try:
                    async with self.parallel:
                        response = await self.client.post(url, json=update, headers=headers)
                    if response.status_code == 200:
                        self.acked[update["update_id"]] = time.monotonic()
                        return
                except httpx.HTTPError:
                    pass
                self.refused += 1
            await asyncio.sleep(backoff)
            backoff = min(2.0, backoff * 2)

    @property
    def pending(self) -> int:
        return sum(1 for task in self.tasks if not task.done())

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()


# -- one run -------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    scenario: str
    variant: str
    mode: str
    seed: int
    asked: int = 0
    answered: int = 0
    lost: int = 0
    duplicated: int = 0
    extra: int = 0
    unmatched: int = 0
    last_answer: float = float("nan")  # seconds from the first question
    wall: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    exit_codes: list[int | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


class Run:
    """One fresh fake, one bot (restartable), its questions and its replies."""

    def __init__(self, scenario: str, variant: str, mode: str, seed: int, workdir: Path, cache: Path) -> None:
        self.result = RunResult(scenario, variant, mode, seed)
        self.mode = mode
        self.rng = random.Random(f"{scenario}-{variant}-{mode}-{seed}")
        label = scenario if variant == "-" else f"{scenario}-{variant}"
        self.folder = workdir / "runs" / f"{label}-{mode}-{seed}"
        self.cache = cache
        self.questions: dict[tuple[int, int], float] = {}  # (chat, message id) -> when asked
        self.replies: dict[tuple[int, int], list[float]] = {}
        self.unmatched = 0
        self._seen = 0
        self.t0: float | None = None
        self.fake: FakeApi
        self.bot: BotProcess
        self.webhook: WebhookDeliverer | None = None

    async def __aenter__(self) -> Run:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.started = time.monotonic()
        self.fake = FakeApi()
        port = free_port()
        config = self.folder / "config.yaml"
        config.write_text(
            f"corpus: {{path: '{ROOT / 'corpus'}'}}\n"
            f"index: {{cache_dir: '{self.cache}'}}\n"
            f"telegram: {{base_url: 'http://127.0.0.1:{self.fake.port}/bot', mode: {self.mode}}}\n"
            f"webhook: {{port: {port}, url: '{PUBLIC_URL}'}}\n"
            f"delivery: {{path: '{self.folder / 'inbox.sqlite3'}'}}\n",
            encoding="utf-8",
        )
        self.bot = BotProcess(config, self.mode, port, self.folder / "bot.log", self.fake)
        if self.mode == "webhook":
            self.webhook = WebhookDeliverer(self.fake, port)
        try:
            self.bot.start()
            await self.bot.ready()
        except BaseException:
            await self._close(kill=True)
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        await self._close(kill=kind is not None)

    async def _close(self, *, kill: bool) -> None:
        try:
            if kill:
                self.bot.kill9()
            else:
                code, _ = await self.bot.terminate()
                self.result.exit_codes.append(code)
            with contextlib.suppress(Exception):
                self.result.faults = self.fake("bench_faults")
            if self.webhook is not None and self.webhook.refused:
                self.result.notes.append(f"{self.webhook.refused} webhook POSTs without a 200")
            if self.webhook is not None and len(self.webhook.acked) < len(self.questions):
                missing = len(self.questions) - len(self.webhook.acked)
                self.result.notes.append(f"{missing} update(s) never got a 200")
        finally:
            self.bot.cleanup()
            if self.webhook is not None:
                await self.webhook.close()
            self.fake.close()
            self.result.wall = time.monotonic() - self.started

    # -- questions and replies

    def ask(self, user: int, text: str | None = None) -> None:
        """One question from ``user`` (in their private chat), by the mode's way of delivering updates."""
        text = text or SHIPPED_QUESTIONS[len(self.questions) % len(SHIPPED_QUESTIONS)]
        if self.t0 is None:
            self.t0 = time.monotonic()
        if self.webhook is not None:
            update = self.fake("make_message_update", text, user_id=user)
            self.webhook.deliver(update)
        else:
            update = self.fake("message", text, user_id=user)
        message = update["message"]
        self.questions[(message["chat"]["id"], message["message_id"])] = time.monotonic()

    def collect(self) -> None:
        """Fetch the replies sent since the last look."""
        new = self.fake("bench_replies", self._seen)
        self._seen += len(new)
        for chat, quoted, at in new:
            key = (chat, quoted if isinstance(quoted, int) else -1)
            if key in self.questions:
                self.replies.setdefault(key, []).append(at)
            else:
                self.unmatched += 1

    def everything_done(self) -> bool:
        if len(self.replies) < len(self.questions):
            return False
        return self.webhook is None or self.webhook.pending == 0

    async def settle(self, seconds: float) -> None:
        """Wait until every question is answered (and acknowledged) plus GRACE, or ``seconds`` passed."""
        deadline = time.monotonic() + seconds
        if self.webhook is not None:
            self.webhook.give_up_at = deadline
        done_at: float | None = None
        while time.monotonic() < deadline:
            self.collect()
            if self.everything_done():
                done_at = done_at or time.monotonic()
                if time.monotonic() - done_at >= GRACE:
                    break
            else:
                done_at = None
            await asyncio.sleep(0.25)
        self.collect()
        self.tally()

    def tally(self) -> None:
        result = self.result
        result.asked = len(self.questions)
        result.answered = sum(1 for key in self.questions if self.replies.get(key))
        result.lost = result.asked - result.answered
        result.duplicated = sum(1 for times in self.replies.values() if len(times) > 1)
        result.extra = sum(len(times) - 1 for times in self.replies.values())
        result.unmatched = self.unmatched
        firsts = [min(times) for times in self.replies.values()]
        if firsts and self.t0 is not None:
            result.last_answer = max(firsts) - self.t0


# -- scenarios -----------------------------------------------------------------------------------------


def users(count: int, offset: int = 0) -> list[int]:
    return [FIRST_USER + offset + i for i in range(count)]


async def scenario_mix(run: Run, drop_mode: str = "before") -> None:
    run.fake("set_faults", **MIX_FAULTS, drop_mode=drop_mode, seed=run.result.seed)
    people = users(6)
    for i in range(18):
        run.ask(people[i % len(people)])
        await asyncio.sleep(run.rng.uniform(0.05, 0.3))
    await run.settle(90)


async def scenario_dropafter(run: Run) -> None:
    await scenario_mix(run, drop_mode="after")


async def scenario_outage(run: Run, seconds: float, kind: str) -> None:
    run.fake("outage", seconds, ["sendMessage"], kind)
    ends = time.monotonic() + seconds
    people = users(10)
    for user in people:
        run.ask(user)
        await asyncio.sleep(seconds / 2 / len(people))
    while time.monotonic() < ends:
        run.collect()
        await asyncio.sleep(0.25)
    early = len(run.replies)
    await run.settle(90)
    firsts = [min(times) for times in run.replies.values()]
    if firsts:
        run.result.notes.append(f"last answer {max(firsts) - ends:.1f} s after the outage ended")
    if early:
        run.result.notes.append(f"{early} answered during the outage")


async def scenario_burst(run: Run) -> None:
    [user] = users(1)
    for _ in range(8):
        run.ask(user)
    await run.settle(60)


async def scenario_crowd(run: Run) -> None:
    people = users(50)
    for _ in range(10):
        for user in people:
            run.ask(user)
        await asyncio.sleep(0.5)
    await run.settle(180)


async def scenario_kill9(run: Run, kills: int) -> None:
    run.fake("bench_random_delays", "sendMessage", 0.1, 0.3, 50_000, run.result.seed)
    people = users(40)
    asking = True

    async def ask_steadily() -> None:
        i = 0
        while asking:
            run.ask(people[i % len(people)])
            i += 1
            await asyncio.sleep(0.25)

    asker = asyncio.create_task(ask_steadily())
    restarts: list[float] = []
    try:
        for _ in range(kills):
            await asyncio.sleep(run.rng.uniform(1.5, 5.0))
            run.bot.kill9()
            run.result.exit_codes.append(run.bot.process.returncode if run.bot.process else None)
            run.bot.start()
            restarts.append(await run.bot.ready())
        await asyncio.sleep(2.0)
    finally:
        asking = False
        await asyncio.wait_for(asker, 5)
    await run.settle(90)
    run.result.notes.append(f"{kills} kills, restart-to-ready median {statistics.median(restarts):.1f} s")
    if run.result.extra > kills:
        run.result.notes.append(f"more extra replies ({run.result.extra}) than kills ({kills})")


async def scenario_sigterm(run: Run) -> None:
    run.fake("delay_next", "sendMessage", 5.0, 100_000)
    for user in users(50):
        run.ask(user)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # every update accepted by the bot, the first reply on its way
        if run.webhook is not None:
            accepted = len(run.webhook.acked) == len(run.questions)
        else:
            accepted = not run.fake("pending_updates")
        if accepted and run.fake("bench_count", "sendMessage") > 0:
            break
        await asyncio.sleep(0.1)
    else:
        run.result.notes.append("not every update was in flight before SIGTERM")
    await asyncio.sleep(0.5)
    run.collect()
    before = len(run.replies)
    code, seconds = await run.bot.terminate()
    run.result.exit_codes.append(code)
    run.collect()
    run.result.notes.append(
        f"SIGTERM: exit {code if code is not None else 'none (killed)'} after {seconds:.1f} s, "
        f"{len(run.replies) - before} answered while stopping, {len(run.questions) - len(run.replies)} left"
    )
    run.bot.start()
    await run.bot.ready()
    await run.settle(180)


@dataclass(frozen=True)
class Case:
    scenario: str
    variant: str
    body: Callable[[Run], Awaitable[None]]
    seeds: int = 1


def cases(names: Sequence[str], seeds: int, kills: int) -> list[Case]:
    table: dict[str, list[Case]] = {
        "mix": [Case("mix", "-", scenario_mix, seeds)],
        "dropafter": [Case("dropafter", "-", scenario_dropafter, seeds)],
        "outage20": [Case("outage20", kind, lambda run, k=kind: scenario_outage(run, 20, k))
                     for kind in ("502", "drop")],
        "outage300": [Case("outage300", kind, lambda run, k=kind: scenario_outage(run, 300, k))
                      for kind in ("502", "drop")],
        "burst": [Case("burst", "-", scenario_burst)],
        "crowd": [Case("crowd", "-", scenario_crowd)],
        "kill9": [Case("kill9", "-", lambda run: scenario_kill9(run, kills))],
        "sigterm": [Case("sigterm", "-", scenario_sigterm)],
    }  # fmt: skip
    return [case for name in names for case in table[name]]


async def run_case(case: Case, mode: str, seed: int, workdir: Path, cache: Path) -> RunResult:
    run = Run(case.scenario, case.variant, mode, seed, workdir, cache)
    try:
        async with run:
            await asyncio.wait_for(case.body(run), timeout=1200)
    except Exception as error:  # a bot that does not start, a fake that does not answer, a bug here
        run.result.error = f"{type(error).__name__}: {error}"[:400]
        run.tally()
    return run.result


# -- report --------------------------------------------------------------------------------------------


def run_line(r: RunResult) -> str:
    faults = ", ".join(f"{k} {v}" for k, v in sorted(r.faults.items())) or "none"
    text = (f"{r.scenario}/{r.variant} {r.mode} seed {r.seed}: asked {r.asked}, answered {r.answered}, "
            f"lost {r.lost}, duplicated {r.duplicated} (+{r.extra}), unmatched {r.unmatched}, "
            f"last answer {r.last_answer:.1f} s, run {r.wall:.0f} s; faults: {faults}")
    if r.notes:
        text += "; " + "; ".join(r.notes)
    if r.error:
        text += f"; ERROR: {r.error}"
    return text


TABLE_HEAD = (
    "| scenario | variant | mode | runs | asked | answered | lost | duplicated (+extra) | unmatched "
    "| last answer s: median / max | faults injected | exit codes | wall s |"
    "\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"
)


def table_row(all_rows: list[RunResult]) -> str:
    """One line for the runs of a scenario, variant and mode; failed runs are named but not counted."""
    first = all_rows[0]
    rows = [r for r in all_rows if not r.error]
    errors = len(all_rows) - len(rows)
    faults: Counter[str] = Counter()
    for r in rows:
        faults.update(r.faults)
    times = [r.last_answer for r in rows if r.last_answer == r.last_answer]
    timing = f"{statistics.median(times):.1f} / {max(times):.1f}" if times else "-"
    codes = Counter("killed" if c is None else str(c) for r in rows for c in r.exit_codes)
    return (
        f"| {first.scenario} | {first.variant} | {first.mode} | {len(rows)}"
        f"{f' (+{errors} failed, not counted)' if errors else ''} | {sum(r.asked for r in rows)} | "
        f"{sum(r.answered for r in rows)} | {sum(r.lost for r in rows)} | "
        f"{sum(r.duplicated for r in rows)} (+{sum(r.extra for r in rows)}) | "
        f"{sum(r.unmatched for r in rows)} | {timing} | "
        f"{', '.join(f'{k} {v}' for k, v in sorted(faults.items())) or 'none'} | "
        f"{', '.join(f'{k}×{v}' for k, v in sorted(codes.items())) or '-'} | "
        f"{sum(r.wall for r in rows):.0f} |"
    )


# -- main ----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: polling, webhook (both)")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all but outage300)")
    parser.add_argument("--seeds", type=int, default=None, help="runs of mix and dropafter per mode (12)")
    parser.add_argument("--kills", type=int, default=None, help="kill -9 + restart cycles per mode (10)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 seeds, 3 kills")
    parser.add_argument("--start-retries", type=int, default=0, metavar="N",
                        help=f"repeat a run whose bot did not start up to N times, {START_RETRY_WAIT:g} s "
                             "apart (default 0)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="index cache, runs' configs, inboxes and bot logs (kept; default: a temporary "
                             "folder, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workdir")
    args = parser.parse_args(argv)
    args.seeds = args.seeds if args.seeds is not None else (2 if args.quick else 12)
    args.kills = args.kills if args.kills is not None else (3 if args.quick else 10)
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for mode in args.mode_list:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r} (polling, webhook)")
    for name in args.scenario_list:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r} ({', '.join(SCENARIOS)})")
    return args


async def run_all(args: argparse.Namespace, workdir: Path, cache: Path) -> list[RunResult]:
    results: list[RunResult] = []
    for case in cases(args.scenario_list, args.seeds, args.kills):
        for mode in args.mode_list:
            for seed in range(1, case.seeds + 1):
                for attempt in range(args.start_retries + 1):
                    log(f"{case.scenario}/{case.variant} {mode} seed {seed} ...")
                    result = await run_case(case, mode, seed, workdir, cache)
                    log("  " + run_line(result))
                    if not (result.error or "").startswith("BotFailed") or attempt == args.start_retries:
                        break
                    log(f"  the bot did not start: trying the run again in {START_RETRY_WAIT:g} s")
                    await asyncio.sleep(START_RETRY_WAIT)
                if attempt:
                    result.notes.append(f"run repeated {attempt} time(s) after the bot failed to start")
                results.append(result)
    return results


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    workdir.mkdir(parents=True, exist_ok=True)
    atexit.register(kill_children)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    cache = workdir / "cache"
    config = workdir / "index-config.yaml"
    config.write_text(f"corpus: {{path: '{ROOT / 'corpus'}'}}\nindex: {{cache_dir: '{cache}'}}\n",
                      encoding="utf-8")
    started = time.monotonic()
    results: list[RunResult] = []
    try:
        log("building the index cache of the shipped corpus ...")
        build_index(config)
        results = asyncio.run(run_all(args, workdir, cache))
    except KeyboardInterrupt:
        log("interrupted: stopping every child process")
        return 130
    finally:
        kill_children()
        if args.workdir is None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif results:
            log(f"configs, inboxes and bot logs: {workdir / 'runs'}")

    print(f"\n`python benchmarks/bench_delivery.py {' '.join(sys.argv[1:])}`".rstrip())
    print(f"on {machine_line()}; {time.monotonic() - started:.0f} s in all. Flood control on (1/s per "
          f"private chat, 20/min per group, 30/s overall); lost = no reply by the end of the settle time, "
          f"duplicated = answered more than once (+extra replies).\n")
    print(TABLE_HEAD)
    groups: dict[tuple[str, str, str], list[RunResult]] = {}
    for result in results:
        groups.setdefault((result.scenario, result.variant, result.mode), []).append(result)
    for rows in groups.values():
        print(table_row(rows))
    notes = [run_line(r) for r in results if r.notes or r.error]
    if notes:
        print()
        for line in notes:
            print(f"- {line}")
    lost = sum(r.lost for r in results if not r.error)
    failed = sum(1 for r in results if r.error)
    print(f"\n{lost} question(s) lost in {len(results) - failed} run(s); {failed} run(s) failed (not "
          f"counted: see their errors above).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

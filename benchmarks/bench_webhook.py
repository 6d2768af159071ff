"""Webhook load benchmark: updates/s and the latency from an update to its reply, under load.

Usage (from the repository root, in the project's virtualenv)::

    python benchmarks/bench_webhook.py                                # shipped corpus and 1M sentences
    python benchmarks/bench_webhook.py --corpora shipped --rates 100,300,600 --duration 20
    python benchmarks/bench_webhook.py --corpora 1m --workdir /tmp/wh --keep   # reuse the 1M corpus + index

What runs, each in its own process, all on loopback:

* the fake Bot API server (``tests.fake_telegram``) standing in for Telegram. Its ``sendMessage`` is made
  light (it records the chat and the arrival time, and answers a minimal Message) and its request log is
  cleared as it goes, so a long run measures the bot, not the fake's bookkeeping;
* the service: the real ``corpus-bot run --mode webhook`` (``bot.cli.main``) with a config file, started
  after ``corpus-bot index`` has built the index cache, so the start only loads it;
* this script: a scheduler sending updates at a fixed rate (open loop) through ``--clients`` concurrent
  aiohttp clients (one keep-alive connection each; aiohttp keeps the generator's own CPU per update low,
  which matters on a machine where it shares two cores with the rest). Each update has its own message
  id (the reply quotes it, which is how a reply is matched to its update) and comes from one of
  ``USERS`` users in turn, so nobody reaches the per-user question limit; each is a question that finds
  something.

Latency is measured from the moment an update was due to be posted to the moment its ``sendMessage``
reached the fake (``time.monotonic`` is one clock for all processes on Linux). Counting from the due time,
not the send time, means a backlog anywhere, even in the clients, counts against the result (no
"coordinated omission"). After a short priming run (connections opened, code paths warm), each rate runs
``--warmup`` seconds unmeasured, then ``--duration`` seconds measured; "sustained" is the replies that
arrived during the measured window per second (above the offered rate while a backlog from the warm-up
drains), and "lost" counts measured updates without a reply 10 s after the last one was sent. Each rate
starts with fresh clients, so it also pays for opening their connections.

One deliberate difference from production: the bot holds itself to Telegram's 30 messages a second
overall (``delivery.overall_rate``), which would cap any run at 30 replies/s. The benchmark measures the
service's own capacity, so the served process lifts that limit (``--telegram-limit`` keeps it). The 1M
corpus is ``bench_index.generate_corpus`` and its questions ``bench_index.make_queries``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

TOKEN = "1000001:BENCH-fake-telegram-token"
SECRET = "bench_webhook-secret-0123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
FIRST_USER = 10_000_000
USERS = 5_000  # distinct senders, used in turn: each asks well under limits.questions_per_minute
PRIME_RATE, PRIME_SECONDS = 50.0, 3.0
LATE_AFTER = 10.0  # seconds after the last post before a missing reply counts as lost
# Questions about the shipped article (each finds quotes in it).
SHIPPED_QUESTIONS = [
    "basic research", "original innovation", "scientific and technological self-reliance", "talent",
    "Seeking Truth magazine", "infrastructure development", "strategic importance", "national laboratories",
    "young scientists", "\"basic research\" -military", "innovation after:2023-01-01", "frontiers",
    "education", "interdisciplinary", "major scientific facilities", "self-improvement",
]  # fmt: skip


# -- the fake Bot API, in a process of its own ---------------------------------------------------------


def fake_main(ready: Any) -> None:
    """Run the fake Bot API server; send its port through ``ready``; serve until terminated."""
    from tests.fake_telegram import FakeTelegram

    async def serve() -> None:
        tg = FakeTelegram(token=TOKEN, strict_chats=False)
        arrivals: list[tuple[int, float]] = []
        message_ids = iter(range(1, 1 << 62))

        def send_message(params: dict[str, Any]) -> dict[str, Any]:
            arrived = time.monotonic()
            chat_id = int(params["chat_id"])
            replied_to = (params.get("reply_parameters") or {}).get("message_id", -1)
            arrivals.append((int(replied_to), arrived))
            if len(tg.calls) > 2000:  # runs under the fake's lock: the request log must not grow forever
                tg.calls.clear()
            chat = {"id": chat_id, "type": "private", "first_name": "Bench"}
            return {"message_id": next(message_ids), "date": int(time.time()), "chat": chat,
                    "text": str(params["text"])[:64]}

        def take_arrivals(params: dict[str, Any]) -> list[tuple[int, float]]:
            taken = arrivals[:]
            arrivals.clear()
            return taken

        tg.register_method("sendMessage", send_message)
        tg.register_method("benchArrivals", take_arrivals)
        async with tg:
            ready.send(tg.port)
            await asyncio.Event().wait()

    asyncio.run(serve())


# -- the service ---------------------------------------------------------------------------------------


def serve_main(config: str, keep_limit: bool) -> int:
    """``corpus-bot run --mode webhook --config CONFIG`` in this process (the benchmark's service)."""
    from bot.cli import main

    if not keep_limit:  # the overall 30 messages/s of Telegram lifted (delivery.overall_rate: 0)
        lifted = Path(config).with_name("config-unlimited.yaml")
        lifted.write_text(Path(config).read_text(encoding="utf-8") + "delivery: {overall_rate: 0}\n",
                          encoding="utf-8")
        config = str(lifted)
    return main(["run", "--mode", "webhook", "--config", config])


def write_config(
    path: Path, corpus: Path, cache: Path, fake_port: int, port: int, *, meaning: bool = True
) -> Path:
    path.write_text(
        f"corpus: {{path: '{corpus}'}}\n"
        f"index: {{cache_dir: '{cache}'}}\n"
        f"ranking: {{semantic: {'true' if meaning else 'false'}}}\n"
        f"telegram: {{base_url: 'http://127.0.0.1:{fake_port}/bot', mode: webhook}}\n"
        f"webhook: {{port: {port}, url: 'https://bot.example.org/telegram'}}\n",
        encoding="utf-8",
    )
    return path


def service_env() -> dict[str, str]:
    return {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def build_index(config: Path) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "bot", "index", "--config", str(config)],
                   cwd=ROOT, env=service_env(), check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def start_service(config: Path, port: int, log: Path, keep_limit: bool) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(Path(__file__).resolve()), "--_serve", str(config)]
    if keep_limit:
        command.append("--telegram-limit")
    with log.open("ab") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=service_env(), stdout=sink, stderr=sink)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the service exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the service was not ready within 300 s; see {log}")


def stop_service(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


# -- the load ------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    rate: float
    sent: int
    measured: int
    replied: int
    lost: int
    sustained: float
    latencies_ms: list[float]
    acks_ms: list[float]
    lags_ms: list[float]  # due -> the client starts the POST: the load generator's own delay
    errors: dict[int, int]
    cpu_ms: dict[str, float] = field(default_factory=dict)  # process -> CPU ms per update sent


def make_update(message_id: int, user: int, question: str) -> bytes:
    person = {"id": user, "is_bot": False, "first_name": "Bench"}
    chat = {"id": user, "type": "private", "first_name": "Bench"}
    message = {"message_id": message_id, "from": person, "chat": chat, "date": int(time.time()),
               "text": question}
    return json.dumps({"update_id": message_id, "message": message}).encode()


async def run_load(
    service_url: str, fake_url: str, rate: float, warmup: float, duration: float, clients: int,
    questions: Sequence[str], first_id: int,
) -> LoadResult:
    total = int(rate * (warmup + duration))
    interval = 1.0 / rate
    start = time.monotonic() + 0.2
    measure_from, measure_to = start + warmup, start + warmup + duration
    due_by_id: dict[int, float] = {}  # message id -> when it was due
    arrival_by_id: dict[int, float] = {}
    acks: list[tuple[float, float]] = []  # (due, seconds to the 200)
    lags: list[tuple[float, float]] = []  # (due, seconds until the POST started)
    errors: dict[int, int] = {}
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    sending_done = asyncio.Event()

    async def schedule() -> None:
        for i in range(total):
            due = start + i * interval
            wait = due - time.monotonic()
            if wait > 0.001:
                await asyncio.sleep(wait)
            queue.put_nowait((i, due))
        for _ in range(clients):
            queue.put_nowait(None)

    async def client(http: aiohttp.ClientSession) -> None:
        headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
        while (item := await queue.get()) is not None:
            i, due = item
            message_id = first_id + i
            due_by_id[message_id] = due
            body = make_update(message_id, FIRST_USER + message_id % USERS, questions[i % len(questions)])
            lags.append((due, time.monotonic() - due))
            try:
                async with http.post(service_url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = -1
            if status == 200:
                acks.append((due, time.monotonic() - due))
            else:
                errors[status] = errors.get(status, 0) + 1

    async def collect(http: aiohttp.ClientSession) -> None:
        give_up: float | None = None
        while True:
            async with http.post(f"{fake_url}/bot{TOKEN}/benchArrivals") as response:
                for message_id, arrived in (await response.json())["result"]:
                    arrival_by_id.setdefault(message_id, arrived)
            if sending_done.is_set():
                give_up = give_up or time.monotonic() + LATE_AFTER
                if len(arrival_by_id) >= len(due_by_id) or time.monotonic() > give_up:
                    return
            await asyncio.sleep(0.1)

    # aiohttp (HTTP parsing in C) keeps the load generator's own CPU per update low: it shares the two
    # cores with the service and the fake. One keep-alive connection per client.
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http, \
            aiohttp.ClientSession(timeout=timeout) as poller:
        collector = asyncio.create_task(collect(poller))
        await asyncio.gather(schedule(), *(client(http) for _ in range(clients)))
        sending_done.set()
        await collector

    measured = [m for m, due in due_by_id.items() if measure_from <= due < measure_to]
    latencies = [1000 * (arrival_by_id[m] - due_by_id[m]) for m in measured if m in arrival_by_id]
    replied = sum(1 for m in measured if m in arrival_by_id)
    in_window = sum(1 for arrived in arrival_by_id.values() if measure_from <= arrived < measure_to)
    return LoadResult(
        rate=rate,
        sent=len(due_by_id),
        measured=len(measured),
        replied=replied,
        lost=len(measured) - replied,
        sustained=in_window / duration,
        latencies_ms=latencies,
        acks_ms=[1000 * seconds for due, seconds in acks if measure_from <= due < measure_to],
        lags_ms=[1000 * seconds for due, seconds in lags if measure_from <= due < measure_to],
        errors=errors,
    )


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (all its threads); ``None``: this process."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_load(pids: dict[str, int | None], *args: Any) -> LoadResult:
    """:func:`run_load` with the CPU time each process spent on it, per update sent."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = run_async(run_load(*args))
    result.cpu_ms = {name: 1000 * (cpu_seconds(pid) - before[name]) / max(1, result.sent)
                     for name, pid in pids.items()}
    return result


def run_async(coroutine: Any) -> Any:
    """``asyncio.run`` on uvloop when it is there (a lighter event loop for the load generator)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


# -- corpora -------------------------------------------------------------------------------------------


@dataclass
class Corpus:
    name: str
    folder: Path
    questions: list[str]


def shipped_corpus() -> Corpus:
    return Corpus("shipped", ROOT / "corpus", SHIPPED_QUESTIONS)


def synthetic_corpus(workdir: Path, sentences: int) -> Corpus:
    """``bench_index``'s generator; the corpus and its questions are kept in ``workdir`` for reuse."""
    from bench_index import generate_corpus, make_queries

    folder = workdir / f"corpus-{sentences}"
    questions_file = workdir / f"questions-{sentences}.json"
    if not questions_file.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        log(f"generating {sentences:,} sentences in {folder} ...")
        info, words, counts = generate_corpus(folder, sentences)
        log(f"  {info.documents:,} documents, {info.text_bytes / 2**20:.0f} MiB in {info.seconds:.1f} s")
        questions_file.write_text(json.dumps(make_queries(words, counts, 2000)), encoding="utf-8")
    return Corpus(f"{sentences // 1_000_000}M" if sentences >= 1_000_000 else f"{sentences:,}", folder,
                  json.loads(questions_file.read_text(encoding="utf-8")))


# -- report --------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def index_sentences(port: int) -> int:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "corpus_bot_index_sentences"]
    return int(family.samples[0].value)


def machine_line() -> str:
    from bench_index import cpu_model

    model = cpu_model()
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"


TABLE_HEAD = (
    "| corpus | sentences | offered /s | sustained /s | replies | lost | non-200 | p50 ms | p95 ms | p99 ms "
    "| max ms | 200 p99 ms | CPU ms/update: service, fake, load |"
    "\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def table_row(corpus: str, sentences: int, result: LoadResult) -> str:
    lat = result.latencies_ms
    errors = sum(result.errors.values())
    return (
        f"| {corpus} | {sentences:,} | {result.rate:g} | {result.sustained:.0f} | {result.replied:,} | "
        f"{result.lost} | {errors} | {percentile(lat, 50):.1f} | {percentile(lat, 95):.1f} | "
        f"{percentile(lat, 99):.1f} | {max(lat, default=float('nan')):.1f} | "
        f"{percentile(result.acks_ms, 99):.1f} | "
        f"{', '.join(f'{result.cpu_ms[k]:.2f}' for k in ('service', 'fake', 'load') if k in result.cpu_ms)} |"
    )


TARGETS = {"shipped": (300, 100.0), "1M": (300, 250.0)}  # (updates/s, p99 ms)


def target_lines(rows: list[tuple[str, int, LoadResult]]) -> list[str]:
    lines = []
    for corpus, (rate, p99) in TARGETS.items():
        at_rate = [r for name, _, r in rows if name == corpus and r.rate >= rate]
        if not at_rate:
            continue
        best = min(at_rate, key=lambda r: r.rate)
        measured = percentile(best.latencies_ms, 99)
        ok = best.sustained >= 0.98 * rate and best.lost == 0 and measured < p99
        lines.append(f"- {corpus}: ≥ {rate} updates/s sustained with p99 < {p99:g} ms: measured "
                     f"{best.sustained:.0f}/s at {best.rate:g}/s offered, p99 {measured:.1f} ms, "
                     f"{best.lost} lost {'✓' if ok else '✗'}")
    return lines


# -- main ----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default="shipped,1m",
                        help="comma-separated: shipped, 1m or a number of sentences (default: both)")
    parser.add_argument("--rates", default="100,300,500",
                        help="offered updates/s, comma-separated (default 100,300,500)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per rate (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="unmeasured seconds before each rate (default 3)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent HTTP clients (default 64)")
    parser.add_argument("--telegram-limit", action="store_true",
                        help="keep python-telegram-bot's 30 messages/s limit (production behaviour)")
    parser.add_argument("--no-meaning", action="store_true",
                        help="ranking.semantic: false (words only: no question embedding per search)")
    parser.add_argument("--workdir", type=Path, default=None, help="where corpora, caches and logs go")
    parser.add_argument("--keep", action="store_true",
                        help="keep the workdir (a --workdir given is always kept)")
    parser.add_argument("--_serve", metavar="CONFIG", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args._serve:
        return serve_main(args._serve, args.telegram_limit)
    rates = [float(r) for r in args.rates.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    workdir.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    fake = context.Process(target=fake_main, args=(send,), name="fake-telegram", daemon=True)
    fake.start()
    fake_port = receive.recv()
    fake_url = f"http://127.0.0.1:{fake_port}"
    rows: list[tuple[str, int, LoadResult]] = []
    notes: list[str] = []
    next_id = 1
    try:
        for name in args.corpora.split(","):
            name = name.strip().lower()
            corpus = shipped_corpus() if name == "shipped" else synthetic_corpus(
                workdir, 1_000_000 if name == "1m" else int(name))
            port = free_port()
            config = write_config(workdir / f"config-{corpus.name}.yaml", corpus.folder,
                                  workdir / "cache", fake_port, port, meaning=not args.no_meaning)
            log(f"{corpus.name}: building the index cache ...")
            built = build_index(config)
            log_file = workdir / f"service-{corpus.name}.log"
            service = start_service(config, port, log_file, args.telegram_limit)
            sentences = index_sentences(port)
            notes.append(f"{corpus.name}: {sentences:,} sentences, index built/checked in {built:.1f} s")
            try:
                log(f"{corpus.name}: priming at {PRIME_RATE:g} updates/s for {PRIME_SECONDS:g} s ...")
                primed = run_async(run_load(f"http://127.0.0.1:{port}/telegram", fake_url, PRIME_RATE, 0,
                                              PRIME_SECONDS, args.clients, corpus.questions, next_id))
                next_id += primed.sent + 1
                for rate in rates:
                    log(f"{corpus.name}: {rate:g} updates/s for {args.warmup:g} + {args.duration:g} s ...")
                    result = measure_load(
                        {"service": service.pid, "fake": fake.pid, "load": None},
                        f"http://127.0.0.1:{port}/telegram", fake_url, rate, args.warmup, args.duration,
                        args.clients, corpus.questions, next_id,
                    )
                    next_id += result.sent + 1
                    rows.append((corpus.name, sentences, result))
                    log(table_row(corpus.name, sentences, result))
                    time.sleep(1)
            finally:
                status = stop_service(service)
                notes.append(f"{corpus.name}: service exit status after SIGTERM: {status}")
    finally:
        fake.terminate()
        fake.join(10)
        if args.workdir is None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    limit = "kept (30 messages/s)" if args.telegram_limit else "lifted (see the module docstring)"
    print(f"\n`python benchmarks/bench_webhook.py {' '.join(sys.argv[1:])}`".rstrip())
    print(f"on {machine_line()}; {args.clients} clients, {args.warmup:g} s warm-up + {args.duration:g} s "
          f"measured per rate; Telegram's outgoing limit {limit}.")
    print("Latency: update due -> its sendMessage at the fake Bot API; 200 p99: update due -> HTTP 200.\n")
    print(TABLE_HEAD)
    for corpus, sentences, result in rows:
        print(table_row(corpus, sentences, result))
    print()
    for line in notes + target_lines(rows):
        print(line if line.startswith("- ") else f"- {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

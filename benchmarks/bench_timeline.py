"""Dates put to use, at a million sentences: counting a topic per period, drawing its chart, sorting by date.

Usage (from the repository root, in the project's virtualenv)::

    python benchmarks/bench_timeline.py                                   # 1M sentences, 200 questions
    python benchmarks/bench_timeline.py --size 30000 --queries 100        # a quick look
    python benchmarks/bench_timeline.py --workdir /tmp/lat                # reuse bench_latency's corpus

The corpus is ``bench_index.generate_corpus`` (documents dated 2015-2025), kept and reused in ``--workdir``
as ``bench_latency`` keeps it (the two share it), with its index cache. The questions are
``bench_latency.make_mix``: 1-4 corpus words, some put as questions, some with a quoted phrase, ~5 % of
the words misspelled. Words only (``ranking.semantic`` off) for all of it: ranking by meaning adds the
same cost to either order, so leaving it out makes the comparison stricter, not kinder.

For each question, in this process, pinned to one core: ``search(q, k=3)`` (relevance), ``search(q +
" sort:new", k=3)`` (date order), and ``timeline([q])`` (counts per period); then for 20 topics the chart
(``bot.chart.draw_timeline``): the first one (matplotlib imported and its fonts loaded) apart, then the
rest, and the chart cache's answer to a repeated topic (``bot.handlers.Services.chart``).

Targets (issue 12): counting <= 30 ms beyond the search itself; a chart drawn within 500 ms; sorting by date
at most 1.5x the relevance search.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_index import machine_line  # noqa: E402
from bench_latency import corpus_for, make_mix  # noqa: E402

from retrieval import NO_SEMANTIC, IndexSettings, open_index  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def timed(fn, *args):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn(*args)
    return result, (time.perf_counter() - started) * 1000


def row(name: str, values: list[float]) -> str:
    return (f"| {name} | {len(values)} | {percentile(values, 50):.1f} | {percentile(values, 95):.1f} | "
            f"{percentile(values, 99):.1f} | {max(values):.1f} |")


def one_core_on_a_generated_corpus(
    description: str, argv: list[str] | None
) -> tuple[argparse.Namespace, Path, list[str], np.ndarray]:
    """The options shared with ``bench_suggest``, this process pinned to ``--core``, and
    ``bench_latency``'s generated corpus of ``--size`` sentences: (options, folder, words, counts)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size", type=int, default=1_000_000, help="sentences (default 1,000,000)")
    parser.add_argument("--queries", type=int, default=200, help="questions timed (default 200)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-timeline"))
    parser.add_argument("--core", type=int, default=0, help="the CPU to run on (0)")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    _, _, folder, vocabulary = corpus_for(args.size, SimpleNamespace(timeout=3600), args.workdir)
    loaded = np.load(vocabulary)
    return args, folder, bytes(loaded["words"]).decode().split("\n"), loaded["counts"]


def main(argv: list[str] | None = None) -> int:
    args, folder, words, counts = one_core_on_a_generated_corpus(__doc__.splitlines()[0], argv)
    questions = [q["text"] for q in make_mix(words, counts, folder, args.queries)]
    started = time.perf_counter()
    opened = open_index(folder, IndexSettings(semantic=NO_SEMANTIC), args.workdir / f"cache-{args.size}")
    index = opened.index
    index.warm_up()
    print(f"# {index.stats.sentences:,} sentences, {index.stats.documents:,} documents; index "
          f"{'loaded' if opened.from_cache else 'built'} in {time.perf_counter() - started:.1f} s; "
          f"{len(questions)} questions", file=sys.stderr)
    for question in questions[:5]:  # warm-up
        index.search(question, 3)
        index.timeline([question])

    relevance, by_date, counting, beyond = [], [], [], []
    for question in questions:
        _, searched = timed(index.search, question, 3)
        _, dated = timed(index.search, f"{question} sort:new", 3)
        _, counted = timed(index.timeline, [question])
        relevance.append(searched)
        by_date.append(dated)
        counting.append(counted)
        beyond.append(counted - searched)

    from bot.chart import draw_timeline
    from bot.config import Settings
    from bot.handlers import Services

    topics = [q for q in questions if index.timeline([q]).series[0].total][:20]
    first_chart, drawing = None, []
    for n, topic in enumerate(topics):
        timeline = index.timeline([topic])
        _, ms = timed(draw_timeline, timeline, topic)
        if n == 0:
            first_chart = ms
        else:
            drawing.append(ms)
    services = Services.create(Settings(), index)
    cached = []
    for topic in topics:
        asyncio.run(services.chart((topic,)))
        started = time.perf_counter()
        asyncio.run(services.chart((topic,)))
        cached.append((time.perf_counter() - started) * 1000)

    ratio = [d / r for d, r in zip(by_date, relevance, strict=True) if r > 0]
    print(f"Timeline and date order at {index.stats.sentences:,} sentences, words only, one core "
          f"({machine_line()})\n")
    print("| what | n | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    print(row("search, relevance (k=3)", relevance))
    print(row("search, sort:new (k=3)", by_date))
    print(row("timeline counts (the whole call)", counting))
    print(row("timeline counts beyond the search", beyond))
    print(row("chart drawn (warm)", drawing))
    print(row("chart from the cache", cached))
    print(f"\nFirst chart of the process (matplotlib imported): {first_chart:.0f} ms.")
    print(f"Date order / relevance, per question: median {statistics.median(ratio):.2f}x; "
          f"p50 {percentile(by_date, 50) / percentile(relevance, 50):.2f}x, "
          f"p99 {percentile(by_date, 99) / percentile(relevance, 99):.2f}x.")
    print("\nTargets: counting <= 30 ms beyond the search (p99 "
          f"{percentile(beyond, 99):.1f} ms {'✓' if percentile(beyond, 99) <= 30 else '✗'}); "
          f"a chart within 500 ms (warm p99 {percentile(drawing, 99):.0f} ms "
          f"{'✓' if percentile(drawing, 99) <= 500 else '✗'}); sorting by date <= 1.5x relevance (p50 "
          f"{percentile(by_date, 50) / percentile(relevance, 50):.2f}x "
          f"{'✓' if percentile(by_date, 50) <= 1.5 * percentile(relevance, 50) else '✗'}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

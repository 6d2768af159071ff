"""Sentence-encoder benchmark: ``retrieval.encoder`` (all-MiniLM-L6-v2) through onnxruntime and through numpy.

Usage (from the repository root, in the project's virtualenv, with the model package installed)::

    python benchmarks/bench_encoder.py                  # both backends, ~3 minutes on 2 cores
    python benchmarks/bench_encoder.py --quick          # fewer questions and sentences, ~1 minute
    python benchmarks/bench_encoder.py --backends onnx --sentences 5000 --out bench-encoder.md

Each figure comes from its own child process (this script re-run with the internal ``--_child`` flag), so
one backend's memory and thread pools never colour the other's, and numpy's BLAS thread count can be set
before numpy is imported (``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS``, the only way to set it):

* **query** (1 thread, as the bot answers a question): import of ``retrieval.encoder``, then
  ``SentenceEncoder.load()`` (hash check, tokenizer, weights, graph, session), resident memory right after,
  the first ``encode_query`` and then the latency of each of ``--questions`` varied questions, one at a time;
* **corpus** (``--threads``, 2 by default, as an index build would): ``encode(sentences, batch_size=B)`` over
  the same realistic sentences of 10-40 words for each batch size, in sentences per second.

Questions and sentences are generated deterministically from English templates and a small English
vocabulary (names, years, places, nouns, verbs), so their word-piece counts are those of real prose (a
pseudo-word corpus would split into far more pieces): about 8-20 pieces per question and 15-55 per sentence.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEED = 20240229
MiB = 1024 * 1024
BATCH_SIZES = (32, 64, 128)

# ---------------------------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------------------------

NAMES = ["the minister", "the mayor", "Dr. Alvarez", "the harbour master", "Professor Lindqvist",
         "the council", "the board", "Maria Okafor", "the committee", "the engineers", "the press office",
         "the union"]
PLACES = ["the harbour", "Lisbon", "the northern district", "the old mill", "Geneva", "the railway station",
          "the university", "the coast", "the valley", "Nairobi", "the market square", "the research centre"]
NOUNS = ["funding", "research", "the budget", "the bridge", "vaccines", "climate policy", "the new law",
         "public transport", "the election", "housing", "the strike", "energy prices", "the museum",
         "the report", "water quality", "the treaty", "school meals", "the archive", "broadband", "tourism"]
VERBS = ["announced", "criticised", "approved", "rejected", "delayed", "defended", "reviewed", "expanded",
         "questioned", "welcomed", "postponed", "funded", "investigated", "described", "reformed"]
ADJECTIVES = ["new", "controversial", "long-awaited", "expensive", "temporary", "regional", "ambitious",
              "unexpected", "modest", "detailed", "national", "private", "historic", "fragile"]
ADVERBS = ["quietly", "publicly", "finally", "again", "sharply", "reluctantly", "formally", "repeatedly"]
CONNECTORS = ["because", "although", "after", "while", "even though", "so that", "before", "and"]
QUESTION_TEMPLATES = [
    "what did {name} say about {noun}",
    "when was {noun} {verb}",
    "why did {name} {verb_base} {noun} in {year}?",
    "{noun} {place}",
    "who {verb} the {adjective} plan for {noun}?",
    "{noun} {year}",
    "how much did {noun} cost in {place}",
    "has {name} ever {verb} {noun} before {year}?",
    "{adjective} {noun} after {year}",
    "what happened at {place} in {year}",
    "is there anything on {noun} and {noun2}?",
    "quotes from {name} on {noun}",
]
BASE_FORMS = {"announced": "announce", "criticised": "criticise", "approved": "approve", "rejected": "reject",
              "delayed": "delay", "defended": "defend", "reviewed": "review", "expanded": "expand",
              "questioned": "question", "welcomed": "welcome", "postponed": "postpone", "funded": "fund",
              "investigated": "investigate", "described": "describe", "reformed": "reform"}


def _pick(rng: np.random.Generator, words: Sequence[str]) -> str:
    return words[int(rng.integers(len(words)))]


def make_questions(n: int, seed: int = SEED) -> list[str]:
    """``n`` questions as a bot user types them: 2-12 words, some with a year or a question mark."""
    rng = np.random.default_rng(seed)
    questions = []
    for i in range(n):
        verb = _pick(rng, VERBS)
        fields = {"name": _pick(rng, NAMES), "noun": _pick(rng, NOUNS), "noun2": _pick(rng, NOUNS),
                  "verb": verb, "verb_base": BASE_FORMS[verb], "place": _pick(rng, PLACES),
                  "adjective": _pick(rng, ADJECTIVES), "year": str(int(rng.integers(1990, 2026)))}
        questions.append(QUESTION_TEMPLATES[i % len(QUESTION_TEMPLATES)].format(**fields))
    return questions


def _clause(rng: np.random.Generator) -> list[str]:
    words = [*_pick(rng, NAMES).split(), _pick(rng, VERBS)]
    if rng.random() < 0.4:
        words.insert(-1, _pick(rng, ADVERBS))
    words += ["the", _pick(rng, ADJECTIVES), *_pick(rng, NOUNS).removeprefix("the ").split()]
    if rng.random() < 0.6:
        words += [_pick(rng, ["in", "near", "outside", "for"]), *_pick(rng, PLACES).split()]
    if rng.random() < 0.3:
        words += ["in", str(int(rng.integers(1890, 2026)))]
    return words


def make_sentences(n: int, seed: int = SEED + 1) -> list[str]:
    """``n`` sentences of 10-40 words (uniform), clauses joined by connectors, as in news prose."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(n):
        target = int(rng.integers(10, 41))
        words = _clause(rng)
        while len(words) < target:
            words += [_pick(rng, CONNECTORS), *_clause(rng)]
        words = words[:target]
        words[0] = words[0].capitalize()
        sentences.append(" ".join(words) + ("." if rng.random() < 0.9 else "?"))
    return sentences


# ---------------------------------------------------------------------------------------------------------
# Children
# ---------------------------------------------------------------------------------------------------------


def rss_kinds_mib() -> dict[str, float]:
    """This process's resident memory: total, anonymous (heap, weights), file-backed (mapped libraries)."""
    kinds = {"VmRSS": 0.0, "RssAnon": 0.0, "RssFile": 0.0}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in kinds:
                kinds[key] = int(line.split()[1]) / 1024
    return {"rss_mib": kinds["VmRSS"], "anon_mib": kinds["RssAnon"], "file_mib": kinds["RssFile"]}


def child_query(params: dict[str, Any]) -> dict[str, Any]:
    """Import, load, memory, then one question at a time on one thread."""
    before = rss_kinds_mib()
    t0 = time.perf_counter()
    from retrieval.encoder import SentenceEncoder

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    encoder = SentenceEncoder.load(backend=params["backend"], threads=1)
    load_s = time.perf_counter() - t0
    after = rss_kinds_mib()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    questions: list[str] = params["questions"]
    t0 = time.perf_counter()
    encoder.encode_query(questions[0])
    first_ms = (time.perf_counter() - t0) * 1000
    latencies = []
    for q in questions:
        t0 = time.perf_counter_ns()
        encoder.encode_query(q)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
    pieces = [len(encoder._tokenizer.encode(q).ids) for q in questions]
    return {"import_s": import_s, "load_s": load_s, "before": before, "after": after, "peak_mib": peak,
            "first_ms": first_ms, "latencies_ms": latencies, "pieces": statistics.mean(pieces),
            "model_id": encoder.model_id}


def child_corpus(params: dict[str, Any]) -> dict[str, Any]:
    """Bulk encoding of the sentences at each batch size (after a small warm-up)."""
    from retrieval.encoder import SentenceEncoder

    encoder = SentenceEncoder.load(backend=params["backend"], threads=params["threads"])
    sentences: list[str] = params["sentences"]
    encoder.encode(sentences[:64], batch_size=32)
    rates = {}
    for batch_size in params["batch_sizes"]:
        runs = []
        for _ in range(params["repeat"]):
            t0 = time.perf_counter()
            vectors = encoder.encode(sentences, batch_size=batch_size)
            runs.append(time.perf_counter() - t0)
        assert vectors.shape == (len(sentences), encoder.dimension)
        rates[str(batch_size)] = len(sentences) / statistics.median(runs)
    pieces = [len(e.ids) for e in encoder._tokenizer.encode_batch(sentences)]
    return {"rates": rates, "pieces": statistics.mean(pieces), "n": len(sentences),
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


CHILDREN = {"query": child_query, "corpus": child_corpus}


def run_child(role: str, params: dict[str, Any], workdir: Path, threads: int) -> dict[str, Any]:
    """One measurement in a new interpreter, BLAS and OpenMP pools sized to ``threads``; figures as JSON."""
    stamp = f"{role}-{params['backend']}"
    params_file, result_file = workdir / f"{stamp}.params.json", workdir / f"{stamp}.result.json"
    params_file.write_text(json.dumps({**params, "result": str(result_file)}))
    env = {**os.environ, **{k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                       "MKL_NUM_THREADS")}}
    log(f"  {stamp} ...")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_child", role,
                           "--_params", str(params_file)], stdout=sys.stderr, stderr=sys.stderr, cwd=ROOT,
                          env=env, check=False)
    if done.returncode != 0 or not result_file.exists():
        return {"error": f"failed (exit status {done.returncode}; see the log above)"}
    log(f"  {stamp} done in {time.perf_counter() - started:.1f} s")
    return json.loads(result_file.read_text())


def child_main(role: str, params_file: str) -> None:
    params = json.loads(Path(params_file).read_text())
    Path(params["result"]).write_text(json.dumps(CHILDREN[role](params)))


# ---------------------------------------------------------------------------------------------------------
# The parent
# ---------------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def machine_line() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    import importlib.metadata as md

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "absent"

    return (f"{os.cpu_count()} CPUs ({model}), {memory:.0f} GiB RAM; Python {sys.version.split()[0]}, "
            f"numpy {np.__version__}, onnxruntime {version('onnxruntime')}, onnx {version('onnx')}, "
            f"tokenizers {version('tokenizers')}, safetensors {version('safetensors')}")


def report(results: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace) -> str:
    backends = list(results)
    label = {"onnx": "onnxruntime", "numpy": "numpy"}
    lines = ["| | " + " | ".join(label[b] for b in backends) + " |", "|---|" + "---:|" * len(backends)]

    def row(name: str, get: Any, digits: int = 2, unit: str = "") -> None:
        cells = []
        for b in backends:
            part = results[b]["query"] if not name.startswith("corpus") else results[b]["corpus"]
            if "error" in part:
                cells.append(part["error"])
                continue
            value = get(part)
            cells.append(f"{value:,.{digits}f}{unit}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    row("import `retrieval.encoder`, s", lambda r: r["import_s"])
    row("**`SentenceEncoder.load()`**, s", lambda r: r["load_s"])
    row("**resident after load**, MiB", lambda r: r["after"]["rss_mib"], 0)
    cells = []
    for b in backends:
        r = results[b]["query"]
        cells.append(r.get("error") or f"{r['after']['anon_mib'] - r['before']['anon_mib']:.0f} / "
                     f"{r['after']['file_mib'] - r['before']['file_mib']:.0f}")
    name = "… growth during import + load: anonymous / file-backed, MiB"
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
    row("peak resident during load (ru_maxrss), MiB", lambda r: r["peak_mib"], 0)
    row("first `encode_query` after load, ms", lambda r: r["first_ms"])
    row("**`encode_query` p50, 1 thread**, ms", lambda r: percentile(r["latencies_ms"], 50))
    row("`encode_query` p90, ms", lambda r: percentile(r["latencies_ms"], 90))
    row("`encode_query` p99, ms", lambda r: percentile(r["latencies_ms"], 99))
    row("word pieces per question (mean, [CLS]/[SEP] included)", lambda r: r["pieces"], 1)
    for batch_size in args.batch_sizes:
        row(f"corpus: `encode`, batch {batch_size}, {args.threads} threads, sentences/s",
            lambda r, b=batch_size: r["rates"][str(b)], 0)
    row("corpus: sentences encoded (each batch size)", lambda r: r["n"], 0)
    row("corpus: word pieces per sentence (mean)", lambda r: r["pieces"], 1)
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="onnx,numpy", help="comma-separated (default onnx,numpy)")
    parser.add_argument("--questions", type=int, default=200, help="questions timed one by one (default 200)")
    parser.add_argument("--sentences", type=int, default=2000,
                        help="sentences for the onnxruntime corpus figures (default 2000)")
    parser.add_argument("--numpy-sentences", type=int, default=500,
                        help="sentences for the numpy corpus figures, a slower path (default 500)")
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)),
                        help="comma-separated (default 32,64,128)")
    parser.add_argument("--threads", type=int, default=2, help="threads for the corpus figures (default 2)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="corpus runs per batch size, the median is reported (default 1)")
    parser.add_argument("--quick", action="store_true", help="100 questions, 500 / 200 sentences")
    parser.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_params", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",") if b]
    if args.quick:
        args.questions, args.sentences, args.numpy_sentences = 100, 500, 200
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args._child:
        child_main(args._child, args._params)
        return 0
    started = time.perf_counter()
    questions = make_questions(args.questions)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-encoder-") as folder:
        workdir = Path(folder)
        for backend in [b for b in args.backends.split(",") if b]:
            n = args.sentences if backend == "onnx" else args.numpy_sentences
            results[backend] = {
                "query": run_child("query", {"backend": backend, "questions": questions}, workdir, 1),
                "corpus": run_child("corpus", {"backend": backend, "sentences": make_sentences(n),
                                               "batch_sizes": args.batch_sizes, "threads": args.threads,
                                               "repeat": args.repeat}, workdir, args.threads),
            }
    command = " ".join(["python benchmarks/bench_encoder.py", *(sys.argv[1:] if argv is None else argv)])
    model_id = next((r["query"]["model_id"] for r in results.values() if "model_id" in r["query"]), "?")
    text = "\n".join([
        "## Sentence-encoder benchmark",
        "",
        f"`{command}`",
        f"on {machine_line()}; {dt.date.today().isoformat()}. Model `{model_id}`.",
        f"Questions: {args.questions} generated, one at a time, `threads=1` (numpy: BLAS on 1 thread).",
        "Corpus: generated sentences of 10-40 words, `encode(sentences, batch_size=B)`, sorted by length",
        f"into batches; `threads={args.threads}` (numpy: BLAS on {args.threads} threads).",
        "",
        report(results, args),
        "",
        f"_Total benchmark time: {time.perf_counter() - started:.0f} s._",
        "",
    ])
    print("\n" + text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

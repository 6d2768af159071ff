"""Index benchmark: this project's sentence index against ``rank_bm25.BM25Okapi`` and ``bm25s``, side by side.

Usage (from the repository root, in the project's virtualenv)::

    python benchmarks/bench_index.py                         # 10k, 100k and 1M sentences (several minutes)
    python benchmarks/bench_index.py --quick                 # 10k and 100k only
    python benchmarks/bench_index.py --sizes 1000000 --repeat 3 --out bench-1m.md
    python benchmarks/bench_index.py --quick --profile /tmp/prof   # also cProfile this project's runs

For every size a deterministic synthetic corpus is generated (Zipf-distributed vocabulary of pseudo-words
headed by English stop words, lognormal sentence lengths, dated documents of paragraphs) and written as
``.txt`` files to a temporary folder. Each engine is then measured in its own child process (this script
re-run with the internal ``--_child`` flag), so the engines' memory never pollutes each other's figures:

* this project: ``retrieval.load_corpus`` (read), ``SearchIndex.build`` (split + analyse + index) and the
  cache write, all through one cold ``open_index`` call; then, in a fresh process, the cache load, the first
  query and the latency of ``SearchIndex.search(q, k=10)`` one query at a time (the full bot path: query
  parsing, analysis, scoring, de-duplication, highlighting);
* ``rank_bm25.BM25Okapi`` and ``bm25s.BM25`` get the very token lists this project indexes (its sentence
  splitter and ``Analyzer``, run once beforehand and not counted in their build), so the comparison is about
  indexing and scoring only. Their query latency excludes query analysis (the tokens are prepared).

Peak memory is the largest resident size of the measuring process plus its worker processes, sampled every
20 ms (``ru_maxrss`` of the main process is reported beside it); resident index size is the growth of VmRSS
from before the load to after the queries, memory-mapped pages included once touched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
SEED = 20240229
ZIPF_EXPONENT = 1.1
CONTENT_WORDS = 120_000  # pseudo-words, below the stop words at the head of the distribution
MEAN_SENTENCE_WORDS = 20.0
SENTENCE_SIGMA = 0.55  # lognormal shape of sentence lengths: a few sentences run past 100 words
K = 10
MiB = 1024 * 1024

# The head of the word distribution, in (roughly) English frequency order.
_STOP_HEAD_TEXT = (
    "the of and to a in is that for it as was with be by on not he this are or his from at which but have "
    "an had they you were their one all we can her has there been if more when will would who so no she "
    "other its may these what them than some him time into only do could new about two also our any"
)
STOP_HEAD = _STOP_HEAD_TEXT.split()
# Pseudo-words must not collide with a stop word of any usual list.
_STOP_FILTER_TEXT = (
    "i me my myself ours ourselves your yours yourself yourselves him himself hers herself itself theirs "
    "themselves whom those am being having does did doing because until while against between through "
    "during before after above below up down out off over under again further then once here where why how "
    "both each few most such nor own same too very just don should now ain aren couldn didn doesn hadn hasn "
    "haven isn mightn mustn needn shan shouldn wasn weren won wouldn ll re ve ma"
)
STOP_FILTER = frozenset(STOP_HEAD) | frozenset(_STOP_FILTER_TEXT.split())

ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
          "br", "cr", "dr", "fl", "gr", "pl", "pr", "st", "tr", "ch", "sh", "th"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"]
CODAS = ["", "", "", "n", "r", "l", "s", "t", "m", "k"]


# ---------------------------------------------------------------------------------------------------------
# Synthetic corpus
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CorpusInfo:
    sentences: int
    documents: int
    words: int
    text_bytes: int
    seconds: float


def vocabulary(rng: np.random.Generator) -> list[str]:
    """Stop words first, then unique pseudo-words, shorter ones more frequent (as in real languages)."""
    codas = dict.fromkeys(CODAS)
    syllables = np.array([o + v + c for o in ONSETS for v in VOWELS for c in codas], dtype=object)
    n_candidates = CONTENT_WORDS * 2
    n_syllables = rng.choice([1, 2, 3, 4], size=n_candidates, p=[0.12, 0.45, 0.33, 0.10])
    picks = rng.integers(0, syllables.size, size=(n_candidates, 4))
    seen: set[str] = set(STOP_FILTER)
    words: list[str] = []
    for count, row in zip(n_syllables.tolist(), picks.tolist(), strict=True):
        word = "".join(syllables[row[:count]])
        if len(word) >= 3 and word not in seen:
            seen.add(word)
            words.append(word)
            if len(words) == CONTENT_WORDS:
                break
    jitter = rng.random(len(words))
    words = [w for _, _, w in sorted(zip([len(w) for w in words], jitter.tolist(), words, strict=True))]
    return STOP_HEAD + words


def generate_corpus(
    folder: Path, n_sentences: int, seed: int = SEED
) -> tuple[CorpusInfo, list[str], np.ndarray]:
    """Write ``n_sentences`` sentences as dated ``.txt`` documents into ``folder``.

    Returns the corpus figures, the vocabulary by rank and each word's number of occurrences."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    words = vocabulary(rng)
    ranks = np.arange(1, len(words) + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-ZIPF_EXPONENT)
    cdf /= cdf[-1]

    mu = np.log(MEAN_SENTENCE_WORDS) - SENTENCE_SIGMA**2 / 2
    lengths = np.clip(np.rint(rng.lognormal(mu, SENTENCE_SIGMA, n_sentences)), 3, 250).astype(np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    n_words = int(ends[-1])
    ids = np.minimum(np.searchsorted(cdf, rng.random(n_words), side="right"), len(words) - 1)
    counts = np.bincount(ids, minlength=len(words))

    plain = np.array(words, dtype=object)
    tokens = plain[ids]
    inner = np.ones(n_words, dtype=bool)
    inner[starts] = False
    inner[ends - 1] = False
    comma = inner & (rng.random(n_words) < 0.05)
    tokens[comma] = tokens[comma] + ","
    tokens[starts] = np.array([w.capitalize() for w in tokens[starts].tolist()], dtype=object)
    marks = np.array([".", "?", "!"], dtype=object)[rng.choice(3, size=n_sentences, p=[0.86, 0.09, 0.05])]
    tokens[ends - 1] = tokens[ends - 1] + marks
    token_list = tokens.tolist()
    del tokens, comma, inner
    sentences = [" ".join(token_list[a:b]) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    del token_list

    # Paragraphs of 3-8 sentences, documents of 5-50 paragraphs, dated 2015-2025.
    paragraph_sizes = rng.integers(3, 9, size=n_sentences // 3 + 1)
    paragraph_ends = np.cumsum(paragraph_sizes)
    n_paragraphs = int(np.searchsorted(paragraph_ends, n_sentences)) + 1
    paragraph_ends = np.minimum(paragraph_ends[:n_paragraphs], n_sentences)
    doc_sizes = rng.integers(5, 51, size=n_paragraphs // 5 + 1)
    doc_ends = np.cumsum(doc_sizes)
    n_documents = int(np.searchsorted(doc_ends, n_paragraphs)) + 1
    doc_ends = np.minimum(doc_ends[:n_documents], n_paragraphs)
    first_day = dt.date(2015, 1, 1).toordinal()
    days = rng.integers(first_day, dt.date(2025, 12, 31).toordinal() + 1, size=n_documents)
    title_lengths = rng.integers(2, 8, size=n_documents)
    title_words = len(STOP_HEAD) + rng.integers(0, 5000, size=(n_documents, 7))

    folder.mkdir(parents=True, exist_ok=True)
    text_bytes = 0
    paragraph_starts = np.concatenate([[0], paragraph_ends[:-1]]).tolist()
    paragraph_ends_list = paragraph_ends.tolist()
    first_paragraph = 0
    for doc, last_paragraph in enumerate(doc_ends.tolist()):
        title = " ".join(words[i].capitalize() for i in title_words[doc, : title_lengths[doc]].tolist())
        date = dt.date.fromordinal(int(days[doc])).isoformat()
        paragraphs = [
            " ".join(sentences[paragraph_starts[p] : paragraph_ends_list[p]])
            for p in range(first_paragraph, last_paragraph)
        ]
        first_paragraph = last_paragraph
        data = (f" date {date} {title}\n\n" + "\n\n".join(paragraphs) + "\n").encode("utf-8")
        (folder / f"doc_{doc:06d}.txt").write_bytes(data)
        text_bytes += len(data)
    info = CorpusInfo(n_sentences, n_documents, n_words, text_bytes, time.perf_counter() - started)
    return info, words, counts


def make_queries(words: list[str], counts: np.ndarray, n: int, seed: int = SEED + 1) -> list[str]:
    """``n`` questions of 1-4 content words, some with a stop word, from words that occur in the corpus.

    Each content word is common (uniform over the 1,000 most frequent), medium (weighted by the square root
    of its frequency) or rare (uniform over words seen at most 10 times) with odds 35 / 45 / 20; every
    fourth question or so also holds a stop word ("history of X")."""
    rng = np.random.default_rng(seed)
    stop = len(STOP_HEAD)
    content = np.flatnonzero(counts[stop:] > 0) + stop
    by_frequency = content[np.argsort(-counts[content], kind="stable")]
    common = by_frequency[:1000]
    medium_p = np.sqrt(counts[content].astype(np.float64))
    medium_p /= medium_p.sum()
    rare = content[counts[content] <= 10]
    if rare.size == 0:
        rare = by_frequency[-1000:]
    queries: list[str] = []
    for _ in range(n):
        n_words = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.35, 0.28, 0.12]))
        chosen: list[str] = []
        for _ in range(n_words):
            kind = rng.random()
            if kind < 0.35:
                word_id = int(rng.choice(common))
            elif kind < 0.80:
                word_id = int(rng.choice(content, p=medium_p))
            else:
                word_id = int(rng.choice(rare))
            chosen.append(words[word_id])
        if rng.random() < 0.25:
            chosen.insert(int(rng.integers(0, len(chosen) + 1)), STOP_HEAD[int(rng.integers(0, 20))])
        queries.append(" ".join(chosen))
    return queries


# ---------------------------------------------------------------------------------------------------------
# Memory and timing helpers (used in the child processes)
# ---------------------------------------------------------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib(pid: int | str = "self") -> float:
    """Resident size of one process (VmRSS), in MiB."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE / MiB
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_kinds_mib() -> dict[str, float]:
    """This process's resident memory by kind: anonymous (heap, numpy arrays) and file-backed (mapped files,
    reclaimable page cache: memory-mapped index files count here once touched)."""
    kinds = {"anon": 0.0, "file": 0.0}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:")):
                    kinds[line[3:7].lower()] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return kinds


def resident_growth(before: dict[str, float]) -> dict[str, float]:
    after = rss_kinds_mib()
    return {"resident_anon_mib": after["anon"] - before["anon"],
            "resident_file_mib": after["file"] - before["file"]}


def maxrss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            found.extend(children)
            stack.extend(children)
    return found


class TreePeak:
    """Samples the resident size of this process plus all its descendants (worker pools) every 20 ms."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        total = rss_mib() + sum(rss_mib(child) for child in _descendants(os.getpid()))
        self.peak = max(self.peak, total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> TreePeak:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def timed_queries(run: Callable[[Any], Any], queries: Sequence[Any]) -> list[float]:
    latencies: list[float] = []
    for q in queries:
        t0 = time.perf_counter_ns()
        run(q)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
    return latencies


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


# ---------------------------------------------------------------------------------------------------------
# Children: one engine, one job, one process
# ---------------------------------------------------------------------------------------------------------


def _profiled(params: dict[str, Any], name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` under cProfile when ``--profile DIR`` was given (stats: DIR/NAME.prof and .txt)."""
    if not params.get("profile_dir"):
        return work()
    import cProfile
    import io
    import pstats

    profile = cProfile.Profile()
    result = profile.runcall(work)
    target = Path(params["profile_dir"])
    target.mkdir(parents=True, exist_ok=True)
    profile.dump_stats(str(target / f"{name}.prof"))
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    (target / f"{name}.txt").write_text(text.getvalue())
    return result


def child_project_build(params: dict[str, Any]) -> dict[str, Any]:
    """Read + build + cache write through one cold ``open_index`` (the bot's first start)."""
    from retrieval import cache
    from retrieval.search import IndexSettings, SearchIndex

    spans: dict[str, float] = {}
    memory: dict[str, float] = {}
    original_load, original_write = cache.load_corpus, cache.write_entry
    original_build = SearchIndex.build.__func__  # type: ignore[attr-defined]

    def load_corpus(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        corpus = original_load(*args, **kwargs)
        spans["read_s"] = time.perf_counter() - t0
        memory["after_read_mib"] = rss_mib()
        return corpus

    def build(cls: type, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        index = original_build(cls, *args, **kwargs)
        spans["build_s"] = time.perf_counter() - t0
        memory["main_peak_after_build_mib"] = maxrss_mib()
        return index

    def write_entry(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        original_write(*args, **kwargs)
        spans["write_s"] = time.perf_counter() - t0

    cache.load_corpus = load_corpus  # type: ignore[assignment]
    cache.write_entry = write_entry  # type: ignore[assignment]
    SearchIndex.build = classmethod(build)  # type: ignore[method-assign, assignment]
    settings = IndexSettings()
    base = rss_mib()

    def work() -> dict[str, Any]:
        with TreePeak() as peak:
            t0 = time.perf_counter()
            opened = cache.open_index(
                params["corpus"], settings, params["cache_dir"], workers=params["workers"]
            )
            total = time.perf_counter() - t0
        stats = opened.index.stats
        assert not opened.from_cache, "the cache folder should have been empty"
        return {
            **spans, **memory, "total_s": total, "tree_peak_mib": peak.peak, "base_mib": base,
            "main_peak_mib": maxrss_mib(), "worker_peak_mib": maxrss_mib(resource.RUSAGE_CHILDREN),
            "sentences": stats.sentences, "terms": stats.terms, "documents": stats.documents,
            "problems": len(opened.problems),
            "postings": int(opened.index._inverted.sentence_ids.shape[0]),
        }

    return _profiled(params, f"project-build-{params['size']}-{params['run']}", work)


def child_project_load(params: dict[str, Any]) -> dict[str, Any]:
    """Fresh process: cache load, first query, then every query once (latency of each)."""
    t0 = time.perf_counter()
    from retrieval.cache import open_index
    from retrieval.search import IndexSettings

    import_s = time.perf_counter() - t0
    queries: list[str] = json.loads(Path(params["queries"]).read_text())
    base, base_kinds = rss_mib(), rss_kinds_mib()

    def work() -> dict[str, Any]:
        t0 = time.perf_counter()
        opened = open_index(params["corpus"], IndexSettings(), params["cache_dir"])
        load_s = time.perf_counter() - t0
        assert opened.from_cache, "expected a cache hit"
        after_load = rss_mib()
        index = opened.index
        t0 = time.perf_counter()
        index.search(queries[0], k=K)
        first_ms = (time.perf_counter() - t0) * 1000
        latencies = timed_queries(lambda q: index.search(q, k=K), queries)
        after_queries = rss_mib()
        growth = resident_growth(base_kinds)
        n_check = params["check_queries"]
        top = [[h.score for h in index.search(q, k=K).hits] for q in queries[:n_check]]
        with_hits = sum(1 for q in queries if index.search(q, k=K).hits)
        return {
            "import_s": import_s, "load_s": load_s, "first_ms": first_ms, "latencies_ms": latencies,
            "base_mib": base, "after_load_mib": after_load, "after_queries_mib": after_queries,
            "resident_mib": after_queries - base, **growth, "top_scores": top, "with_hits": with_hits,
        }

    return _profiled(params, f"project-load-{params['size']}-{params['run']}", work)


_worker_state: tuple[Any, Callable[..., Any], int] | None = None


def _tokenize_chunk(paragraph_lists: list[tuple[str, ...]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Worker: the project's splitter and analyser over some documents -> (vocabulary, term ids, lengths)."""
    global _worker_state
    if _worker_state is None:
        from retrieval import sentences
        from retrieval.search import IndexSettings

        settings = IndexSettings()
        analyzer = settings.analysis_config().analyzer()
        _worker_state = (analyzer, sentences.split_sentences, settings.max_sentence_chars)
    analyzer, split, max_chars = _worker_state
    vocab: dict[str, int] = {}
    ids: list[int] = []
    lengths: list[int] = []
    for paragraphs in paragraph_lists:
        for paragraph in paragraphs:
            for start, end in split(paragraph, max_chars):
                terms = analyzer.terms(paragraph[start:end])
                lengths.append(len(terms))
                ids.extend([vocab.setdefault(t, len(vocab)) for t in terms])
    return list(vocab), np.asarray(ids, dtype=np.int32), np.asarray(lengths, dtype=np.int32)


def child_tokenize(params: dict[str, Any]) -> dict[str, Any]:
    """The token lists the other engines index: this project's split + analysis, saved as flat arrays."""
    from retrieval.corpus import load_corpus
    from retrieval.search import IndexSettings

    t0 = time.perf_counter()
    documents = load_corpus(params["corpus"]).documents
    chunks: list[list[tuple[str, ...]]] = [[]]
    size = 0
    for document in documents:
        chunks[-1].append(document.paragraphs)
        size += sum(len(p) for p in document.paragraphs)
        if size > 2_000_000:
            chunks.append([])
            size = 0
    vocab: dict[str, int] = {}
    id_parts: list[np.ndarray] = []
    length_parts: list[np.ndarray] = []
    with ProcessPoolExecutor(max_workers=params["workers"], mp_context=get_context("spawn")) as pool:
        for local_vocab, ids, lengths in pool.map(_tokenize_chunk, chunks):
            mapping = np.array([vocab.setdefault(t, len(vocab)) for t in local_vocab], dtype=np.int32)
            id_parts.append(mapping[ids] if ids.size else ids)
            length_parts.append(lengths)
    ids = np.concatenate(id_parts)
    lengths = np.concatenate(length_parts)
    vocab_bytes = np.frombuffer("\n".join(vocab).encode("utf-8"), dtype=np.uint8)
    np.savez(params["tokens"], vocab=vocab_bytes, ids=ids, lengths=lengths)
    analyzer = IndexSettings().analysis_config().analyzer()  # what SearchIndex uses for questions
    query_tokens = [analyzer.terms(q) for q in json.loads(Path(params["queries"]).read_text())]
    Path(params["query_tokens"]).write_text(json.dumps(query_tokens))
    return {"tokenize_s": time.perf_counter() - t0, "sentences": int(lengths.size), "tokens": int(ids.size)}


def load_token_lists(path: str) -> list[list[str]]:
    with np.load(path) as data:
        vocab = np.array(data["vocab"].tobytes().decode("utf-8").split("\n"), dtype=object)
        ids, lengths = data["ids"], data["lengths"]
    flat = vocab[ids].tolist()
    ends = np.cumsum(lengths).tolist()
    starts = [0, *ends[:-1]]
    return [flat[a:b] for a, b in zip(starts, ends, strict=True)]


def _query_tokens(params: dict[str, Any]) -> list[list[str]]:
    return [q for q in json.loads(Path(params["query_tokens"]).read_text()) if q]


def child_bm25s_build(params: dict[str, Any]) -> dict[str, Any]:
    import bm25s

    corpus_tokens = load_token_lists(params["tokens"])
    gc.collect()
    base = rss_mib()
    with TreePeak() as peak:
        t0 = time.perf_counter()
        retriever = bm25s.BM25(k1=1.5, b=0.75, method=params["bm25s_method"])
        retriever.index(corpus_tokens, show_progress=False)
        build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    retriever.save(params["save_dir"], show_progress=False)
    write_s = time.perf_counter() - t0
    return {"build_s": build_s, "write_s": write_s, "tree_peak_mib": peak.peak, "base_mib": base,
            "main_peak_mib": maxrss_mib()}


def child_bm25s_load(params: dict[str, Any]) -> dict[str, Any]:
    import bm25s

    queries = _query_tokens(params)
    base, base_kinds = rss_mib(), rss_kinds_mib()
    t0 = time.perf_counter()
    retriever = bm25s.BM25.load(params["save_dir"], mmap=True, show_progress=False)
    load_s = time.perf_counter() - t0
    after_load = rss_mib()

    def run(tokens: list[str]) -> Any:
        return retriever.retrieve([tokens], k=K, show_progress=False)

    t0 = time.perf_counter()
    run(queries[0])
    first_ms = (time.perf_counter() - t0) * 1000
    latencies = timed_queries(run, queries)
    after_queries = rss_mib()
    growth = resident_growth(base_kinds)
    return {**growth, "load_s": load_s, "first_ms": first_ms, "latencies_ms": latencies, "base_mib": base,
            "after_load_mib": after_load, "after_queries_mib": after_queries,
            "resident_mib": after_queries - base}


def child_rank_bm25(params: dict[str, Any]) -> dict[str, Any]:
    limit = int(params["mem_limit_gib"] * 1024 * MiB)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from rank_bm25 import BM25Okapi

    gc.collect()
    base, base_kinds = rss_mib(), rss_kinds_mib()  # before the token lists, which are freed after the build
    try:
        corpus_tokens = load_token_lists(params["tokens"])
        with TreePeak() as peak:
            t0 = time.perf_counter()
            bm25 = BM25Okapi(corpus_tokens)
            build_s = time.perf_counter() - t0
        del corpus_tokens
        gc.collect()
        after_build = rss_mib()
        growth = resident_growth(base_kinds)
        queries = _query_tokens(params)[: params["n_queries"]]

        def run(tokens: list[str]) -> list[float]:
            scores = bm25.get_scores(tokens)
            best = np.argpartition(-scores, K - 1)[:K]
            return sorted(scores[best].tolist(), reverse=True)

        top: list[list[float]] = []
        latencies: list[float] = []
        for q in queries:
            t0 = time.perf_counter_ns()
            top.append(run(q))
            latencies.append((time.perf_counter_ns() - t0) / 1e6)
    except MemoryError:
        return {"error": f"out of memory (address space limit {params['mem_limit_gib']:g} GiB)"}
    return {"build_s": build_s, "tree_peak_mib": peak.peak, "main_peak_mib": maxrss_mib(), "base_mib": base,
            "resident_mib": after_build - base, **growth, "latencies_ms": latencies, "top_scores": top}


def child_generate(params: dict[str, Any]) -> dict[str, Any]:
    info, words, counts = generate_corpus(Path(params["corpus"]), params["size"])
    Path(params["queries"]).write_text(json.dumps(make_queries(words, counts, params["n_queries"])))
    return {"sentences": info.sentences, "documents": info.documents, "words": info.words,
            "text_bytes": info.text_bytes, "seconds": info.seconds}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": child_generate,
    "project-build": child_project_build,
    "project-load": child_project_load,
    "tokenize": child_tokenize,
    "bm25s-build": child_bm25s_build,
    "bm25s-load": child_bm25s_load,
    "rank-bm25": child_rank_bm25,
}


def run_child(role: str, params: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    """Run one measurement in a new interpreter: its output goes to stderr, its figures come back as JSON."""
    stamp = f"{role}-{params.get('size', 0)}-{params.get('run', 0)}"
    params_file = workdir / f"{stamp}.params.json"
    result_file = workdir / f"{stamp}.result.json"
    result_file.unlink(missing_ok=True)
    params_file.write_text(json.dumps({**params, "result": str(result_file)}))
    command = [sys.executable, str(Path(__file__).resolve()), "--_child", role, "--_params", str(params_file)]
    log(f"  {stamp} ...")
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, timeout=timeout, cwd=ROOT,
                                   check=False)
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
# The parent: generate, measure, report
# ---------------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(slots=True)
class SizeReport:
    size: int
    corpus: CorpusInfo
    n_queries: int
    project_build: list[dict[str, Any]]
    project_load: list[dict[str, Any]]
    tokenize: dict[str, Any]
    bm25s_build: list[dict[str, Any]]
    bm25s_load: list[dict[str, Any]]
    rank: dict[str, Any]


def ok(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if "error" not in r]


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in ok(runs) if key in r]
    return statistics.median(values) if values else None


def spread(runs: list[dict[str, Any]], key: str, scale: float = 1.0, digits: int = 2) -> str:
    """Median of the runs, with [best–worst] when there were several."""
    values = sorted(r[key] * scale for r in ok(runs) if key in r)
    if not values:
        errors = [r["error"] for r in runs if "error" in r]
        return errors[0] if errors else "—"
    text = f"{statistics.median(values):.{digits}f}"
    if len(values) > 1:
        text += f" [{values[0]:.{digits}f}–{values[-1]:.{digits}f}]"
    return text


def pooled(runs: list[dict[str, Any]], limit: int | None = None) -> list[float]:
    return [x for r in ok(runs) for x in r.get("latencies_ms", [])[:limit]]


def measure_size(size: int, args: argparse.Namespace, workdir: Path) -> SizeReport:
    log(f"== {size:,} sentences")
    folder = workdir / f"corpus-{size}"
    queries_file = workdir / f"queries-{size}.json"
    # Generated in a child too: Linux carries a process's peak RSS over into the children it starts, so a
    # parent that held a big corpus would inflate every child's ru_maxrss.
    generated = run_child("generate", {"size": size, "corpus": str(folder), "queries": str(queries_file),
                                       "n_queries": args.queries}, workdir, args.timeout)
    if "error" in generated:
        raise SystemExit(f"could not generate the corpus: {generated['error']}")
    info = CorpusInfo(**generated)
    log(f"  corpus: {info.documents:,} documents, {info.words:,} words, {info.text_bytes / MiB:.0f} MiB, "
        f"generated in {info.seconds:.1f} s")
    queries = json.loads(queries_file.read_text())
    n_rank = args.rank_queries if args.rank_queries else (10 if size >= 1_000_000 else 20)
    common = {"size": size, "corpus": str(folder), "queries": str(queries_file), "workers": args.workers,
              "profile_dir": str(args.profile) if args.profile else None, "check_queries": n_rank}
    timeout = args.timeout

    project_build, project_load = [], []
    for run in range(args.repeat):
        cache_dir = workdir / f"cache-{size}-{run}"
        shutil.rmtree(cache_dir, ignore_errors=True)
        params = {**common, "run": run, "cache_dir": str(cache_dir)}
        project_build.append(run_child("project-build", params, workdir, timeout))
        if "error" not in project_build[-1]:
            project_load.append(run_child("project-load", params, workdir, timeout))
        if not args.keep:
            shutil.rmtree(cache_dir, ignore_errors=True)

    tokens_file = workdir / f"tokens-{size}.npz"
    token_params = {**common, "run": 0, "tokens": str(tokens_file),
                    "query_tokens": str(workdir / f"query-tokens-{size}.json")}
    tokenize = run_child("tokenize", token_params, workdir, timeout)
    bm25s_build: list[dict[str, Any]] = []
    bm25s_load: list[dict[str, Any]] = []
    rank: dict[str, Any] = {"error": "not run"}
    if "error" not in tokenize:
        for run in range(args.repeat):
            save_dir = workdir / f"bm25s-{size}-{run}"
            shutil.rmtree(save_dir, ignore_errors=True)
            params = {**token_params, "run": run, "save_dir": str(save_dir),
                      "bm25s_method": args.bm25s_method}
            bm25s_build.append(run_child("bm25s-build", params, workdir, timeout))
            if "error" not in bm25s_build[-1]:
                bm25s_load.append(run_child("bm25s-load", params, workdir, timeout))
            if not args.keep:
                shutil.rmtree(save_dir, ignore_errors=True)
        if args.skip_rank_bm25:
            rank = {"error": "skipped (--skip-rank-bm25)"}
        else:
            rank = run_child("rank-bm25", {**token_params, "n_queries": n_rank,
                                           "mem_limit_gib": args.rank_bm25_mem_gib},
                             workdir, args.rank_bm25_timeout)
        if not args.keep:
            tokens_file.unlink(missing_ok=True)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return SizeReport(size, info, len(queries), project_build, project_load, tokenize,
                      bm25s_build, bm25s_load, rank)


def speedup(report: SizeReport) -> float | None:
    rank = report.rank
    if "error" in rank or not rank.get("latencies_ms") or not ok(report.project_load):
        return None
    n = len(rank["latencies_ms"])
    ours = percentile(pooled(report.project_load, n), 50)
    return percentile(rank["latencies_ms"], 50) / ours if ours > 0 else None


def agreement(report: SizeReport) -> str:
    rank, loads = report.rank, ok(report.project_load)
    if "error" in rank or not loads:
        return "—"
    same = 0
    pairs = list(zip(loads[0]["top_scores"], rank["top_scores"], strict=False))
    for ours, theirs in pairs:
        n = min(len(ours), len(theirs))
        same += bool(n) and np.allclose(ours[:n], theirs[:n], rtol=1e-4, atol=1e-6)
    return f"{same}/{len(pairs)}"


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}{suffix}"


def size_table(report: SizeReport, args: argparse.Namespace) -> str:
    pb, pl, bb, bl, rank, tok = (report.project_build, report.project_load, report.bm25s_build,
                                 report.bm25s_load, [report.rank], report.tokenize)
    built = ok(pb)
    sentences = built[0]["sentences"] if built else tok.get("sentences", report.size)
    terms = f", {built[0]['terms']:,} terms, {built[0]['postings']:,} postings" if built else ""
    info = report.corpus
    runs = f"{args.repeat} runs each, median [best–worst]" if args.repeat > 1 else "1 run"
    lines = [
        f"### {report.size:,} generated sentences ({runs})",
        "",
        f"{info.documents:,} documents, {info.words:,} words, {info.text_bytes / MiB:.0f} MiB of text "
        f"(generated in {info.seconds:.1f} s); indexed: {sentences:,} sentences{terms}.",
        "",
        f"| | this project | rank_bm25 BM25Okapi | bm25s ({args.bm25s_method}, numpy backend) |",
        "|---|---:|---:|---:|",
    ]

    def row(label: str, *cells: str) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    tokenize_s = fmt(tok.get("tokenize_s"), 1) if "error" not in tok else tok["error"]
    row("corpus read (`load_corpus`), s", spread(pb, "read_s"), "—", "—")
    row("split + analyse (the others' token lists; not in their build), s", "(in build)",
        f"{tokenize_s} (once, shared)", "(same lists)")
    row("build, s", spread(pb, "build_s"), spread(rank, "build_s"), spread(bb, "build_s"))
    full = [{"x": r["read_s"] + r["build_s"]} for r in built]
    row("**full build (read + split + analyse + index)**, s", spread(full, "x"), "—", "—")
    row("cache write / `save`, s", spread(pb, "write_s"), "n/a (no persistence)", spread(bb, "write_s"))
    row("cache load / `load(mmap=True)`, s", spread(pl, "load_s", digits=3), "n/a",
        spread(bl, "load_s", digits=3))
    row("build peak RSS, process + workers, MiB", spread(pb, "tree_peak_mib", digits=0),
        spread(rank, "tree_peak_mib", digits=0), spread(bb, "tree_peak_mib", digits=0))
    row("build peak RSS, main process (`ru_maxrss`), MiB", spread(pb, "main_peak_mib", digits=0),
        spread(rank, "main_peak_mib", digits=0), spread(bb, "main_peak_mib", digits=0))
    row("index resident (RSS growth: load + queries), MiB", spread(pl, "resident_mib", digits=0),
        spread(rank, "resident_mib", digits=0) + " (after build)", spread(bl, "resident_mib", digits=0))
    row("… of which anonymous (heap, arrays), MiB", spread(pl, "resident_anon_mib", digits=0),
        spread(rank, "resident_anon_mib", digits=0), spread(bl, "resident_anon_mib", digits=0))
    row("… of which file-backed (touched pages of mmap'd files), MiB",
        spread(pl, "resident_file_mib", digits=0),
        spread(rank, "resident_file_mib", digits=0), spread(bl, "resident_file_mib", digits=0))
    row("first query after load (fresh process), ms", spread(pl, "first_ms", digits=1), "—",
        spread(bl, "first_ms", digits=1))
    rank_lat = rank[0].get("latencies_ms", []) if "error" not in rank[0] else []
    def rank_cell(q: float) -> str:
        return fmt(percentile(rank_lat, q), 1) if rank_lat else str(rank[0].get("error", "—"))

    row("**query p50, top-10**, ms", fmt(percentile(pooled(pl), 50), 3), rank_cell(50),
        fmt(percentile(pooled(bl), 50), 3))
    row("**query p99, top-10**, ms", fmt(percentile(pooled(pl), 99), 3), rank_cell(99),
        fmt(percentile(pooled(bl), 99), 3))
    row("queries timed (one at a time)", f"{len(pooled(pl)):,}", f"{len(rank_lat):,}", f"{len(pooled(bl)):,}")
    factor = speedup(report)
    bm25s_factor = None
    if rank_lat and ok(bl):
        bm25s_factor = percentile(rank_lat, 50) / percentile(pooled(bl, len(rank_lat)), 50)
    row("speed-up over rank_bm25 (p50, same queries)", fmt(factor, 0, "×"), "1×", fmt(bm25s_factor, 0, "×"))
    row("top-10 scores equal to rank_bm25's", agreement(report), "—", "no (own idf)")
    loads = ok(pl)
    if loads:
        hits = statistics.median(r["with_hits"] for r in loads)
        lines.append("")
        lines.append(f"Queries with at least one hit: {hits:.0f}/{report.n_queries}. "
                     f"Import of `retrieval` in the fresh process: {spread(pl, 'import_s')} s.")
    return "\n".join(lines)


TARGETS = (
    # (label, unit, limit, how to get the value)
    ("query p50 (one at a time)", "ms", 0.5, lambda r: percentile(pooled(r.project_load), 50)),
    ("query p99 (one at a time)", "ms", 3.0, lambda r: percentile(pooled(r.project_load), 99)),
    ("first query after a fresh cache load", "ms", 50.0, lambda r: median_of(r.project_load, "first_ms")),
    ("full build: read + split + analyse + index", "s", 60.0,
     lambda r: statistics.median(x["read_s"] + x["build_s"] for x in ok(r.project_build))
     if ok(r.project_build) else None),
    ("cache load", "s", 1.0, lambda r: median_of(r.project_load, "load_s")),
    ("index resident after load + queries", "MiB", 200.0,
     lambda r: median_of(r.project_load, "resident_mib")),
    ("build peak memory (process + workers)", "MiB", 1536.0,
     lambda r: median_of(r.project_build, "tree_peak_mib")),
)


def target_table(report: SizeReport) -> str:
    scale = "" if report.size == 1_000_000 else " (the targets are set for 1M sentences)"
    lines = [f"#### Targets at {report.size:,} sentences{scale}", "",
             "| target | measured | |", "|---|---:|:-:|"]
    for label, unit, limit, get in TARGETS:
        value = get(report)
        if value is None or value != value:
            lines.append(f"| {label} < {limit:g} {unit} | — | ? |")
            continue
        digits = 3 if unit == "ms" and value < 10 else (0 if unit == "MiB" else 2)
        mark = "✓" if value < limit else "✗"
        lines.append(f"| {label} < {limit:g} {unit} | {value:.{digits}f} {unit} | {mark} |")
    factor = speedup(report)
    mark = "?" if factor is None else ("✓" if factor >= 500 else "✗")
    lines.append(f"| speed-up over rank_bm25 (p50) ≥ 500× | {fmt(factor, 0, '×')} | {mark} |")
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine_line() -> str:
    model = cpu_model()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    import bm25s
    import rank_bm25  # noqa: F401 - imported to prove it is installed

    return (f"{os.cpu_count()} CPUs ({model}), {memory:.0f} GiB RAM; Python {sys.version.split()[0]}, "
            f"numpy {np.__version__}, bm25s {bm25s.__version__}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                        help="comma-separated numbers of sentences (default: 10000,100000,1000000)")
    parser.add_argument("--quick", action="store_true", help="only 10k and 100k sentences")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure this project and bm25s this many times, report the median (default 1)")
    parser.add_argument("--queries", type=int, default=300, help="questions per size (default 300)")
    parser.add_argument("--rank-queries", type=int, default=0,
                        help="questions for rank_bm25 (default: 20, or 10 from 1M sentences on)")
    parser.add_argument("--workers", type=int, default=2, help="processes for split + analyse (default 2)")
    parser.add_argument("--bm25s-method", default="lucene", choices=["lucene", "robertson", "atire"])
    parser.add_argument("--skip-rank-bm25", action="store_true")
    parser.add_argument("--rank-bm25-timeout", type=float, default=1200, help="seconds (default 1200)")
    parser.add_argument("--rank-bm25-mem-gib", type=float, default=10.0,
                        help="address-space limit of the rank_bm25 process (default 10 GiB)")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds per child process (default 1800)")
    parser.add_argument("--workdir", type=Path,
                        help="where corpora and caches go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--profile", type=Path, help="write cProfile stats of this project's runs here")
    parser.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_params", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args._child:
        child_main(args._child, args._params)
        return 0
    sizes = QUICK_SIZES if args.quick else tuple(int(s.replace("_", "")) for s in args.sizes.split(",") if s)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-index-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = " ".join(["python benchmarks/bench_index.py", *(sys.argv[1:] if argv is None else argv)])
    header = [
        "## Index benchmark",
        "",
        f"`{command}`",
        f"on {machine_line()}; {dt.date.today().isoformat()}.",
        "Latencies: `SearchIndex.search(q, k=10)` end to end for this project; prepared token lists for the",
        "others (bm25s and rank_bm25 score the same terms: this project's splitter and analyser). bm25s uses",
        "its own idf variant, so its scores differ from BM25Okapi's; this project's should equal",
        "rank_bm25's.",
    ]
    sections: list[str] = []
    try:
        for size in sizes:
            report = measure_size(size, args, workdir)
            sections.append(size_table(report, args) + "\n\n" + target_table(report))
            print("\n" + sections[-1] + "\n", flush=True)  # as soon as each size is done
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    text = "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n"
    text += f"\n_Total benchmark time: {time.perf_counter() - started:.0f} s._\n"
    print("\n" + "=" * 100 + "\n\n" + text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

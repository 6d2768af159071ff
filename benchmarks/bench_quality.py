"""Quality benchmark: how often this project's search puts the right sentence first, against BM25 references.

Usage (from the repository root, in the project's virtualenv with the ``bench`` extra)::

    python benchmarks/bench_quality.py                              # every corpus with a question file
    python benchmarks/bench_quality.py --corpora shipped --split held
    python benchmarks/bench_quality.py --set ranking.k1=1.2 --set ranking.b=0.6 --label "k1=1.2 b=0.6"
    python benchmarks/bench_quality.py --workdir /tmp/quality --details /tmp/quality/details.jsonl

Every question of ``quality/questions/<corpus>.jsonl`` (format: ``quality/FORMAT.md``) is put to every
system; a system answers with a ranked list of the corpus's sentences, and the rank of the first gold
sentence in it gives Recall@1/3/10 and MRR@10. Questions with no answer in the corpus measure, with the
answerable ones, how well a system's confidence tells the two apart (AUROC).

All systems rank the same sentences, the project's splitter output (``SearchIndex.hit(i).text`` for every
sentence of an index built with the default settings), so only the ranking differs:

* ``project``: ``retrieval.open_index(folder, IndexSettings(), cache_dir=WORKDIR/cache)`` then
  ``index.search(question, k=10)``, as a user gets it without a config file (``--set`` changes settings);
  confidence: ``SearchResult.confidence`` when the result has one, else the top hit's score;
* ``rank_bm25``: ``BM25Okapi`` over lowercase ``\\w+`` words, Snowball English stop words removed, PyStemmer
  English stems; confidence: the top score;
* ``bm25s``: ``bm25s.BM25()`` (lucene) over ``bm25s.tokenize(stopwords="en", stemmer=english)``;
* ``bm25s-passages``: the same over passages of 3 consecutive sentences of a document (sliding, step 1); a
  passage is a hit when any of its sentences is gold. It ranks passages, not sentences: a reference for
  what a little context buys, not a like-for-like row.

The references drop entries that score 0 and repeats of an entry already ranked (the project shows a
sentence found in several places once, too). Query latency is the search call only (question analysis
included), one question at a time, after one warm-up question per corpus and system.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.metadata
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
for _path in (ROOT, BENCHMARKS):  # benchmarks/ first: ``quality`` comes from it (see quality/__init__.py)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from quality import metrics  # noqa: E402
from quality.corpora import SHIPPED, corpus_description, corpus_names, prepare_corpus  # noqa: E402

from retrieval import IndexSettings, SearchIndex, open_index, open_vectors  # noqa: E402
from retrieval.analysis import ENGLISH_STOP_WORDS  # noqa: E402

QUESTIONS_DIR = BENCHMARKS / "quality" / "questions"
SYSTEMS = ("project", "rank_bm25", "bm25s", "bm25s-passages")
SPLITS = ("tune", "held", "all")
K = 10
FETCH = 3 * K  # candidates a reference fetches, so that K remain after dropping repeats
PASSAGE_SENTENCES = 3
TOP_DETAILS = 3

# The Snowball English stop-word list (the one the project uses too), for rank_bm25's row.
SNOWBALL_STOP_WORDS = ENGLISH_STOP_WORDS
_WORD = re.compile(r"\w+")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the systems ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ranking:
    entries: list[tuple[str, ...]]  # best first; each the sentence texts it covers (one, or a passage)
    confidence: float


class System(Protocol):
    def search(self, question: str) -> Ranking: ...


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    doc: str
    position: int


class ProjectSystem:
    def __init__(self, index: SearchIndex) -> None:
        self.index = index
        self.confidence_source = "the top hit's score, as `SearchResult` has no `confidence`"

    def search(self, question: str) -> Ranking:
        result = self.index.search(question, k=K)
        confidence = getattr(result, "confidence", None)
        if confidence is not None:
            self.confidence_source = "`SearchResult.confidence`"
        else:
            confidence = result.hits[0].score if result.hits else 0.0
        return Ranking([(hit.text,) for hit in result.hits], float(confidence))


def snowball_tokens(text: str, stemmer: Any) -> list[str]:
    words = [w for w in _WORD.findall(text.lower()) if w not in SNOWBALL_STOP_WORDS]
    return list(stemmer.stemWords(words))


def _top(entries: Sequence[tuple[str, ...]], ids: Iterator[int], scores: Sequence[float]) -> Ranking:
    """The first K distinct entries of positive score, in the order given."""
    ranked: list[tuple[str, ...]] = []
    seen: set[tuple[str, ...]] = set()
    best = 0.0
    for i, score in zip(ids, scores, strict=False):
        if score <= 0:
            break
        best = max(best, float(score))
        entry = entries[i]
        if entry in seen:
            continue
        seen.add(entry)
        ranked.append(entry)
        if len(ranked) == K:
            break
    return Ranking(ranked, best)


class RankBM25System:
    def __init__(self, sentences: Sequence[Sentence]) -> None:
        import Stemmer
        from rank_bm25 import BM25Okapi

        self.stemmer = Stemmer.Stemmer("english")
        self.entries = [(s.text,) for s in sentences]
        self.bm25 = BM25Okapi([snowball_tokens(s.text, self.stemmer) for s in sentences])

    def search(self, question: str) -> Ranking:
        tokens = snowball_tokens(question, self.stemmer)
        if not tokens:
            return Ranking([], 0.0)
        scores = np.asarray(self.bm25.get_scores(tokens))
        n = min(FETCH, scores.size)
        candidates = np.argpartition(-scores, n - 1)[:n] if n < scores.size else np.arange(scores.size)
        order = candidates[np.lexsort((candidates, -scores[candidates]))]
        return _top(self.entries, iter(order.tolist()), scores[order].tolist())


class BM25sSystem:
    def __init__(self, entries: Sequence[tuple[str, ...]]) -> None:
        import bm25s
        import Stemmer

        self._bm25s = bm25s
        self.stemmer = Stemmer.Stemmer("english")
        self.entries = list(entries)
        tokens = bm25s.tokenize([" ".join(e) for e in self.entries], stopwords="en", stemmer=self.stemmer,
                                show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index(tokens, show_progress=False)

    def search(self, question: str) -> Ranking:
        tokens = self._bm25s.tokenize([question], stopwords="en", stemmer=self.stemmer, return_ids=False,
                                      show_progress=False)[0]
        vocabulary = self.retriever.vocab_dict
        known = [t for t in tokens if t and t in vocabulary]
        if not known:
            return Ranking([], 0.0)
        k = min(FETCH, len(self.entries))
        ids, scores = self.retriever.retrieve([known], k=k, show_progress=False)
        return _top(self.entries, iter(ids[0].tolist()), scores[0].tolist())


def passages(sentences: Sequence[Sentence], size: int = PASSAGE_SENTENCES) -> list[tuple[str, ...]]:
    """Windows of ``size`` consecutive sentences of each document, step 1 (a shorter document: one window)."""
    by_doc: dict[str, list[Sentence]] = defaultdict(list)
    for sentence in sentences:
        by_doc[sentence.doc].append(sentence)
    windows: list[tuple[str, ...]] = []
    for doc_sentences in by_doc.values():
        texts = [s.text for s in sorted(doc_sentences, key=lambda s: s.position)]
        starts = range(max(1, len(texts) - size + 1))
        windows.extend(tuple(texts[start : start + size]) for start in starts)
    return windows


# -- settings overrides --------------------------------------------------------------------------------------


class SettingError(ValueError):
    pass


def apply_overrides(settings: IndexSettings, assignments: Sequence[str]) -> IndexSettings:
    """``settings`` with each ``FIELD=VALUE`` (``ranking.k1=1.2`` for a field of a nested group) replaced."""
    for assignment in assignments:
        name, sep, raw = assignment.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SettingError(f"--set {assignment!r}: expected FIELD=VALUE")
        settings = _replace(settings, name.split("."), raw.strip(), name)
    return settings


def _replace(obj: Any, path: list[str], raw: str, full: str) -> Any:
    fields = [f.name for f in dataclasses.fields(obj)]
    head = path[0]
    if head not in fields:
        raise SettingError(f"--set {full}: {type(obj).__name__} has no field {head!r} "
                           f"(fields: {', '.join(fields)})")
    current = getattr(obj, head)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise SettingError(f"--set {full}: {head} is a plain value, not a group of fields")
        value = _replace(current, path[1:], raw, full)
    elif dataclasses.is_dataclass(current):
        inner = ", ".join(f"{head}.{f.name}" for f in dataclasses.fields(current))
        raise SettingError(f"--set {full}: {head} is a group of fields: set {inner}")
    else:
        value = parse_value(raw, current, full)
    try:
        return dataclasses.replace(obj, **{head: value})
    except (TypeError, ValueError) as error:
        raise SettingError(f"--set {full}={raw}: {error}") from error


def parse_value(raw: str, current: Any, name: str) -> Any:
    """``raw`` as a value of the type of ``current``."""
    try:
        if isinstance(current, bool):
            folded = raw.casefold()
            if folded in ("true", "yes", "on", "1"):
                return True
            if folded in ("false", "no", "off", "0"):
                return False
            raise ValueError("expected true or false")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, str):
            return raw
        if raw.casefold() in ("none", "null"):
            return None
        try:
            return int(raw)
        except ValueError:
            return float(raw) if current is None else json.loads(raw)
    except ValueError as error:
        raise SettingError(f"--set {name}={raw}: {error}") from error


def describe_overrides(default: IndexSettings, settings: IndexSettings) -> str:
    changed: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if dataclasses.is_dataclass(x) and dataclasses.is_dataclass(y):
                walk(x, y, f"{prefix}{f.name}.")
            elif x != y:
                changed.append(f"{prefix}{f.name}={y!r}")

    walk(default, settings, "")
    return ", ".join(changed)


# -- running -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    system: str
    question: metrics.Question
    rank: int | None
    confidence: float
    ms: float
    top: list[tuple[str, ...]]


@dataclass(slots=True)
class CorpusInfo:
    name: str
    folder: Path
    description: str
    documents: int
    sentences: int
    questions: list[metrics.Question]
    unreachable: list[str]  # ids of answerable questions none of whose gold sentences is in the corpus


def question_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(QUESTIONS_DIR.glob("*.jsonl"))}


def choose_corpora(requested: str | None) -> tuple[list[str], list[str]]:
    """The corpora to run, and notes on question files left out (no corpus module of that name)."""
    files, known = question_files(), corpus_names()
    if requested:
        names = [n.strip() for n in requested.split(",") if n.strip()]
        for name in names:
            if name not in known:
                raise SystemExit(f"unknown corpus {name!r} (corpora: {', '.join(known)})")
            if name not in files:
                raise SystemExit(f"corpus {name!r} has no question file {QUESTIONS_DIR / (name + '.jsonl')}")
        return names, []
    names = [n for n in known if n in files]
    notes = [f"`questions/{n}.jsonl` has no corpus module `corpora/{n}.py`: skipped" for n in files
             if n not in known]
    return names, notes


def in_split(question: metrics.Question, split: str) -> bool:
    return split == "all" or question.split == split


def corpus_sentences(index: SearchIndex) -> list[Sentence]:
    hits = (index.hit(i) for i in range(index.stats.sentences))
    return [Sentence(h.text, h.doc, h.position) for h in hits]


def unreachable_questions(questions: Sequence[metrics.Question], sentences: Sequence[Sentence]) -> list[str]:
    exact = {metrics.normalise(s.text) for s in sentences}
    missing: list[str] = []
    for question in questions:
        if not question.answerable:
            continue
        if any(metrics.normalise(g) in exact for g in question.gold):
            continue
        if not any(metrics.matches_gold(s.text, question.gold) for s in sentences):
            missing.append(question.id)
    return missing


def run_system(name: str, system: System, questions: Sequence[metrics.Question]) -> list[Outcome]:
    if questions:
        system.search(questions[0].question)  # warm-up, not timed
    outcomes = []
    for question in questions:
        started = time.perf_counter()
        ranking = system.search(question.question)
        ms = (time.perf_counter() - started) * 1000
        rank = metrics.first_gold_rank(ranking.entries, question.gold)
        outcomes.append(Outcome(name, question, rank, ranking.confidence, ms, ranking.entries[:TOP_DETAILS]))
    return outcomes


def run_corpus(name: str, args: argparse.Namespace, settings: IndexSettings, workdir: Path,
               label: str, confidence_notes: dict[str, str]) -> tuple[CorpusInfo, list[Outcome]]:
    path = question_files()[name]
    try:
        questions = metrics.load_questions(path, corpus=name)
    except metrics.QuestionFileError as error:
        raise SystemExit(str(error)) from error
    selected = [q for q in questions if in_split(q, args.split)]
    started = time.perf_counter()
    folder = prepare_corpus(name, workdir)
    log(f"{name}: corpus ready in {folder} ({time.perf_counter() - started:.1f} s)")
    cache_dir = workdir / "cache" / name  # one corpus per cache folder: each prunes what is not its own
    opened = open_index(folder, IndexSettings(), cache_dir=cache_dir)
    project_index = (
        opened.index if settings == IndexSettings() else open_index(folder, settings, cache_dir).index
    )
    embed_started = time.perf_counter()
    build = open_vectors(project_index, cache_dir, threads=2)  # meaning, as `corpus-bot index` builds it
    if build is not None and not build.complete:
        log(f"{name}: embedding {build.total - build.done:,} sentences (cached in {cache_dir} for next time)")
        build.run()
        log(f"{name}: embedded in {time.perf_counter() - embed_started:.1f} s")
        open_vectors(project_index, cache_dir, threads=1)  # questions one at a time, as the bot asks them
    project_index.warm_up()  # as the bot does at start: the typo index is not built on the first question
    sentences = corpus_sentences(opened.index)
    info = CorpusInfo(name, folder, corpus_description(name), opened.documents, len(sentences), questions,
                      unreachable_questions(questions, sentences))
    log(f"{name}: {opened.summary()}; {len(selected)} questions")
    builders: dict[str, Callable[[], System]] = {
        "project": lambda: ProjectSystem(project_index),
        "rank_bm25": lambda: RankBM25System(sentences),
        "bm25s": lambda: BM25sSystem([(s.text,) for s in sentences]),
        "bm25s-passages": lambda: BM25sSystem(passages(sentences)),
    }
    outcomes: list[Outcome] = []
    for system_name in args.systems:
        started = time.perf_counter()
        system = builders[system_name]()
        built = time.perf_counter() - started
        row = label if system_name == "project" else system_name
        outcomes.extend(run_system(row, system, selected))
        if isinstance(system, ProjectSystem):
            confidence_notes[row] = system.confidence_source
        log(f"{name}: {row} built in {built:.2f} s, {len(selected)} questions in "
            f"{time.perf_counter() - started - built:.2f} s")
    return info, outcomes


# -- the report ----------------------------------------------------------------------------------------------


def fmt(value: float, digits: int = 3) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def summary_row(system: str, outcomes: Sequence[Outcome]) -> str:
    answerable = [o.rank for o in outcomes if o.question.answerable]
    n_no = len(outcomes) - len(answerable)
    auc = metrics.no_answer_auroc([o.question for o in outcomes], [o.confidence for o in outcomes])
    ms = [o.ms for o in outcomes]
    cells = [
        f"{len(outcomes)} ({len(answerable)} + {n_no})",
        *(fmt(metrics.recall_at(answerable, k)) for k in (1, 3, 10)),
        fmt(metrics.mrr_at(answerable, K)),
        fmt(auc),
        fmt(percentile(ms, 50)),
        fmt(percentile(ms, 99)),
    ]
    return f"| {system} | " + " | ".join(cells) + " |"


def split_table(split: str, systems: Sequence[str], by_system: dict[str, list[Outcome]]) -> str:
    lines = [
        f"### Split: {split}",
        "",
        "| system | questions (answerable + no-answer) | Recall@1 | Recall@3 | Recall@10 | MRR@10 "
        "| no-answer AUROC | query p50 ms | query p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system in systems:
        lines.append(summary_row(system, [o for o in by_system[system] if in_split(o.question, split)]))
    return "\n".join(lines)


def tag_table(split: str, systems: Sequence[str], by_system: dict[str, list[Outcome]]) -> str:
    tags = sorted({o.question.tag for o in by_system[systems[0]] if o.question.answerable})
    lines = [
        f"### Recall@1 by tag (split: {split})",
        "",
        "| tag | questions | " + " | ".join(systems) + " |",
        "|---|---:|" + "---:|" * len(systems),
    ]
    for tag in tags:
        cells = []
        for system in systems:
            ranks = [o.rank for o in by_system[system] if o.question.tag == tag and o.question.answerable]
            cells.append(fmt(metrics.recall_at(ranks, 1)))
        n = sum(1 for o in by_system[systems[0]] if o.question.tag == tag and o.question.answerable)
        lines.append(f"| {tag} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def corpus_table(split: str, systems: Sequence[str], by_system: dict[str, list[Outcome]],
                 corpora: Sequence[str]) -> str:
    lines = [
        f"### Per corpus: Recall@1 / MRR@10 (split: {split})",
        "",
        "| corpus | answerable questions | " + " | ".join(systems) + " |",
        "|---|---:|" + "---:|" * len(systems),
    ]
    for corpus in corpora:
        cells = []
        n = 0
        for system in systems:
            ranks = [o.rank for o in by_system[system]
                     if o.question.corpus == corpus and o.question.answerable]
            n = len(ranks)
            cells.append(f"{fmt(metrics.recall_at(ranks, 1))} / {fmt(metrics.mrr_at(ranks, K))}")
        lines.append(f"| {corpus} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shipped_line(split: str, systems: Sequence[str], by_system: dict[str, list[Outcome]]) -> str:
    parts = []
    for system in systems:
        ranks = [o.rank for o in by_system[system] if o.question.corpus == SHIPPED and o.question.answerable]
        parts.append(f"{system} **{sum(1 for r in ranks if r == 1)} of {len(ranks)}**")
    return (f"### Shipped corpus\n\nAnswerable questions right at rank 1 (split: {split}): "
            + "; ".join(parts) + ".")


def corpus_lines(infos: Sequence[CorpusInfo], split: str) -> str:
    lines = [
        "| corpus | documents | sentences | questions (answerable + no-answer) | tune / held | what |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for info in infos:
        qs = info.questions
        n_ans = sum(1 for q in qs if q.answerable)
        n_tune = sum(1 for q in qs if q.split == "tune")
        lines.append(f"| {info.name} | {info.documents:,} | {info.sentences:,} | {len(qs)} ({n_ans} + "
                     f"{len(qs) - n_ans}) | {n_tune} / {len(qs) - n_tune} | {info.description} |")
    if split != "all":
        lines.append("")
        lines.append(f"Only the `{split}` questions were run.")
    return "\n".join(lines)


def cpu_description() -> str:
    from bench_index import cpu_model  # benchmarks/ is on the path (see the top)

    model = cpu_model()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{usable} CPUs ({model}), {memory:.0f} GiB RAM"


def versions() -> str:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    parts = [f"Python {sys.version.split()[0]}"]
    parts += [f"{p} {version(p)}" for p in ("numpy", "rank-bm25", "bm25s", "PyStemmer")]
    return ", ".join(parts)


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "retrieval"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown revision"
    return f"commit {head}" + (" (retrieval/ modified)" if dirty else "")


def method_notes(confidence_notes: dict[str, str], overrides: str, systems: Sequence[str]) -> str:
    confidence = "".join(f" {row}: {note};" for row, note in confidence_notes.items())
    lines = [
        "How to read it: every system ranks the same sentences (the project's splitter output); a hit is an",
        "entry that matches a gold sentence as `quality/FORMAT.md` says. Recall@k and MRR@10 count the",
        "answerable questions only; the no-answer AUROC takes all (answerable = positive, 0.5 is chance),",
        f"each question scored by the system's confidence:{confidence} the references: their top score.",
        "Query latency: the search call alone, question analysis included, one question at a time after a",
        "warm-up question. The references drop zero scores and entries already ranked.",
        f"Project settings: {overrides or 'IndexSettings() defaults'}.",
    ]
    if "bm25s-passages" in systems:
        lines += [
            "**`bm25s-passages` ranks passages of 3 consecutive sentences, not sentences** (a passage counts",
            "when any of its sentences is gold): a reference for what context buys, not a like-for-like row.",
        ]
    return "\n".join(lines)


def write_details(path: Path, outcomes: Sequence[Outcome]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for o in outcomes:
            q = o.question
            record = {
                "corpus": q.corpus, "id": q.id, "split": q.split, "tag": q.tag, "system": o.system,
                "question": q.question, "rank": o.rank, "confidence": o.confidence, "ms": round(o.ms, 3),
                "top": [" ".join(entry) for entry in o.top], "gold": list(q.gold),
            }  # fmt: skip
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


# -- main ----------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", help="comma-separated corpus names (default: every corpus with a "
                                          "question file)")
    parser.add_argument("--split", choices=SPLITS, default="all",
                        help="the questions to run (default all: tune and held are reported apart too)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated, among {', '.join(SYSTEMS)} (default: all)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of IndexSettings for the project row (repeatable; "
                             "ranking.k1=1.2 for a ranking parameter)")
    parser.add_argument("--label", help="the project row's name (default: project, with the overrides)")
    parser.add_argument("--workdir", type=Path,
                        help="prepared corpora and index caches, kept for the next run (default: a "
                             "temporary folder, removed at the end)")
    parser.add_argument("--details", type=Path, help="write one JSON line per question and system here")
    parser.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        parser.error(f"--systems: unknown {', '.join(unknown) or '(none given)'} (choose from "
                     f"{', '.join(SYSTEMS)})")
    args.systems = list(dict.fromkeys(systems))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    default = IndexSettings()
    try:
        settings = apply_overrides(default, args.overrides)
    except SettingError as error:
        raise SystemExit(str(error)) from error
    overrides = describe_overrides(default, settings)
    label = args.label or ("project" + (f" ({overrides})" if overrides else ""))
    if label in SYSTEMS[1:]:
        raise SystemExit(f"--label {label!r} is the name of a reference system")
    names, notes = choose_corpora(args.corpora)
    if not names:
        raise SystemExit(f"no corpus has a question file in {QUESTIONS_DIR}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-quality-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    infos: list[CorpusInfo] = []
    outcomes: list[Outcome] = []
    confidence_notes: dict[str, str] = {}
    try:
        for name in names:
            info, found = run_corpus(name, args, settings, workdir, label, confidence_notes)
            infos.append(info)
            outcomes.extend(found)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    systems = [label if s == "project" else s for s in args.systems]
    by_system: dict[str, list[Outcome]] = {s: [] for s in systems}
    for outcome in outcomes:
        by_system[outcome.system].append(outcome)
    command = " ".join(["python benchmarks/bench_quality.py", *(sys.argv[1:] if argv is None else argv)])
    header = [
        "## Quality benchmark",
        "",
        f"`{command}`",
        f"on {cpu_description()}; {versions()}; {git_revision()}; {dt.date.today().isoformat()}.",
        "",
        corpus_lines(infos, args.split),
        "",
        method_notes(confidence_notes, overrides, args.systems),
    ]
    if any(info.unreachable for info in infos):
        header.append("")
        for info in infos:
            if info.unreachable:
                header.append(f"**Warning:** in `{info.name}`, no gold sentence of {len(info.unreachable)} "
                              f"question(s) is among the corpus's sentences: {', '.join(info.unreachable)}.")
    for note in notes:
        header.append("")
        header.append(f"Note: {note}.")
    splits = ["tune", "held", "all"] if args.split == "all" else [args.split]
    sections = [split_table(split, systems, by_system) for split in splits]
    sections.append(tag_table(args.split, systems, by_system))
    sections.append(corpus_table(args.split, systems, by_system, [i.name for i in infos]))
    if SHIPPED in names:
        sections.append(shipped_line(args.split, systems, by_system))
    text = "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n"
    text += f"\n_Total benchmark time: {time.perf_counter() - started:.0f} s._\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.details:
        write_details(args.details, outcomes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Documents -> sentences -> terms -> (:class:`SentenceStore`, :class:`InvertedIndex`).

Splitting and analysis are the expensive part of a build and are independent per document, so large corpora
are cut into chunks analysed in worker processes; so is a large update of an index that answers questions
meanwhile (``background``), at a lower priority: seconds of pure Python in one of the bot's threads would hold
the interpreter lock its searches need (a 1,000-document update: 4.9 s). Each worker returns compact arrays
(its own small vocabulary plus term ids), never per-token Python objects, so little has to cross the process
boundary.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

from retrieval.analysis import Analyzer
from retrieval.background import lower_this_threads_priority
from retrieval.corpus import Document
from retrieval.index import BM25Params, InvertedIndex
from retrieval.sentences import split_sentences
from retrieval.store import DocumentInfo, SentenceStore, TextBlob

Progress = Callable[[int, int], None]  # (characters done, characters in all)

log = logging.getLogger(__name__)

_CHUNK_CHARS = 2_000_000  # a worker's unit of work: big enough to amortise the hand-over
_PARALLEL_MIN_CHARS = 8_000_000  # below this, starting worker processes costs more than it saves
# From this size a background update is analysed in a worker process: starting one costs ~0.5 s, about what
# analysing this much takes, and it keeps the analysis off the lock the searches need.
_BACKGROUND_PROCESS_CHARS = 500_000


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    """What a worker needs to split and analyse exactly as the parent would."""

    language: str
    stop_words: bool
    stemming: bool
    max_sentence_chars: int

    def analyzer(self) -> Analyzer:
        return Analyzer(language=self.language, stop_words=self.stop_words, stemming=self.stemming)


@dataclass(slots=True)
class _ChunkResult:
    texts: list[str]
    doc: np.ndarray  # int32 per sentence (global document number)
    paragraph: np.ndarray  # int32 per sentence
    text_hash: np.ndarray  # uint64 per sentence, of the whitespace- and case-normalised text
    vocabulary: list[str]  # this chunk's own terms
    token_terms: np.ndarray  # int32 per token, into ``vocabulary``
    lengths: np.ndarray  # int32 per sentence: terms in it


_worker_analyzer: tuple[AnalysisConfig, Analyzer] | None = None


def _analyse_chunk(config: AnalysisConfig, docs: Sequence[tuple[int, tuple[str, ...]]]) -> _ChunkResult:
    global _worker_analyzer
    if _worker_analyzer is None or _worker_analyzer[0] != config:
        _worker_analyzer = (config, config.analyzer())
    analyzer = _worker_analyzer[1]
    texts: list[str] = []
    doc_ids: list[int] = []
    paragraphs: list[int] = []
    hashes: list[int] = []
    vocabulary: dict[str, int] = {}
    token_terms: list[int] = []
    lengths: list[int] = []
    for doc_id, doc_paragraphs in docs:
        for paragraph_no, paragraph in enumerate(doc_paragraphs):
            for start, end in split_sentences(paragraph, config.max_sentence_chars):
                text = paragraph[start:end]
                terms = analyzer.terms(text)
                texts.append(text)
                doc_ids.append(doc_id)
                paragraphs.append(paragraph_no)
                hashes.append(text_hash(text))
                lengths.append(len(terms))
                token_terms.extend([vocabulary.setdefault(t, len(vocabulary)) for t in terms])
    return _ChunkResult(
        texts=texts,
        doc=np.asarray(doc_ids, dtype=np.int32),
        paragraph=np.asarray(paragraphs, dtype=np.int32),
        text_hash=np.asarray(hashes, dtype=np.uint64),
        vocabulary=list(vocabulary),
        token_terms=np.asarray(token_terms, dtype=np.int32),
        lengths=np.asarray(lengths, dtype=np.int32),
    )


def text_hash(text: str) -> int:
    """Equal for sentences that differ only in case and spacing, so repeats are shown once."""
    normalised = " ".join(text.casefold().split())
    return int.from_bytes(hashlib.blake2b(normalised.encode("utf-8"), digest_size=8).digest(), "little")


def _chunks(documents: Sequence[Document]) -> Iterator[tuple[int, list[tuple[int, tuple[str, ...]]]]]:
    chunk: list[tuple[int, tuple[str, ...]]] = []
    size = 0
    for doc_id, document in enumerate(documents):
        chunk.append((doc_id, document.paragraphs))
        size += sum(len(p) for p in document.paragraphs)
        if size >= _CHUNK_CHARS:
            yield size, chunk
            chunk, size = [], 0
    if chunk:
        yield size, chunk


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def build_parts(
    documents: Sequence[Document],
    config: AnalysisConfig,
    params: BM25Params,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    background: bool = False,
) -> tuple[SentenceStore, InvertedIndex]:
    """``background``: the caller's process answers questions meanwhile; an update of more than
    ``_BACKGROUND_PROCESS_CHARS`` is then analysed in ``workers`` processes at a lower priority (in this
    process after all if they cannot start)."""
    total_chars = sum(len(p) for d in documents for p in d.paragraphs)
    workers = default_workers() if workers is None else max(1, workers)
    chunks = list(_chunks(documents))
    tracker = _Progress(total_chars, progress)
    aside = background and total_chars >= _BACKGROUND_PROCESS_CHARS
    if aside:
        try:
            results = _analyse_in_processes(config, chunks, workers, tracker, lowered=True)
        except (BrokenProcessPool, OSError) as error:
            log.warning("analysing the update in this process: worker processes failed (%s)", error)
            tracker.done = 0
            results = [tracker.step(size, _analyse_chunk(config, chunk)) for size, chunk in chunks]
    elif workers > 1 and total_chars >= _PARALLEL_MIN_CHARS and len(chunks) > 1:
        results = _analyse_in_processes(config, chunks, workers, tracker, lowered=False)
    else:
        results = [tracker.step(size, _analyse_chunk(config, chunk)) for size, chunk in chunks]
    return _assemble(documents, results, params)


class _Progress:
    def __init__(self, total: int, report: Progress | None) -> None:
        self.total, self.done, self._report = total, 0, report

    def step(self, size: int, result: _ChunkResult) -> _ChunkResult:
        self.done += size
        if self._report:
            self._report(self.done, self.total)
        return result


def _analyse_in_processes(
    config: AnalysisConfig,
    chunks: Sequence[tuple[int, list[tuple[int, tuple[str, ...]]]]],
    workers: int,
    tracker: _Progress,
    *,
    lowered: bool,
) -> list[_ChunkResult]:
    # spawn, not fork: the caller may be a threaded server, and forking threads is unsafe.
    with ProcessPoolExecutor(
        max_workers=min(workers, len(chunks)), mp_context=get_context("spawn"),
        initializer=lower_this_threads_priority if lowered else None,
    ) as pool:  # fmt: skip
        futures = [(size, pool.submit(_analyse_chunk, config, chunk)) for size, chunk in chunks]
        return [tracker.step(size, future.result()) for size, future in futures]


def _assemble(
    documents: Sequence[Document], results: list[_ChunkResult], params: BM25Params
) -> tuple[SentenceStore, InvertedIndex]:
    vocabulary: dict[str, int] = {}
    token_terms_parts = []
    for result in results:
        local_to_global = np.fromiter(
            (vocabulary.setdefault(term, len(vocabulary)) for term in result.vocabulary),
            dtype=np.int64,
            count=len(result.vocabulary),
        )
        token_terms_parts.append(
            local_to_global[result.token_terms] if result.token_terms.size else np.zeros(0, np.int64)
        )
    lengths = _concat([r.lengths for r in results], np.int32)
    token_terms = _concat(token_terms_parts, np.int64)
    token_sentences = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    inverted = InvertedIndex.from_arrays(list(vocabulary), token_terms, token_sentences, lengths, params)

    encoded = [t.encode("utf-8") for r in results for t in r.texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    blob = TextBlob(b"".join(encoded))
    del encoded
    sentence_doc = _concat([r.doc for r in results], np.int32)
    hashes = _concat([r.text_hash for r in results], np.uint64)
    group, group_size = duplicate_groups(hashes)
    counts = np.bincount(sentence_doc, minlength=len(documents))
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(documents) else np.zeros(0, np.int64)
    infos = [
        DocumentInfo(d.name, d.title, d.date, d.url, int(first), int(count))
        for d, first, count in zip(documents, firsts, counts, strict=True)
    ]
    store = SentenceStore(
        infos,
        blob,
        offsets,
        sentence_doc,
        _concat([r.paragraph for r in results], np.int32),
        group,
        (group_size[group] - 1).astype(np.int32),
        hashes,
    )
    return store, inverted


def duplicate_groups(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sentence's group of equal texts (int32), and each group's size."""
    _, group, group_size = np.unique(hashes, return_inverse=True, return_counts=True)
    return group.astype(np.int32).reshape(-1), group_size


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)

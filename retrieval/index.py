"""Terms -> BM25 weights in sparse arrays, and top-k scoring over them.

The inverted index is three numpy arrays in CSR layout (``indptr``, ``sentence_ids``, ``tf``), one row per
term. BM25 weights are derived from term frequencies and sentence lengths, so the ranking parameters can
change without a rebuild: given when the index is opened (the cache keeps them), or else worked out one
term at a time, the first time a query asks for that term (a composed index of a growing corpus would
otherwise recompute every posting's weight at each update, ~0.3 s per ten million postings, for the few
terms the next questions use). A query touches only the postings of its own terms: scores
are accumulated in a pooled scratch vector and the top k are selected among the touched sentences only
(``argpartition`` over a mostly-zero vector of a million scores costs as much as a full sort).

Scores follow ``rank_bm25`` exactly (``BM25Okapi`` with its idf floor, ``BM25L``, ``BM25Plus``), including
its habit of counting a repeated query term once per repetition.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from retrieval.limits import ALGORITHMS

MIN_COVERAGE_WEIGHT = 0.01
_DEFAULT_DELTA = {"bm25okapi": 0.0, "bm25l": 0.5, "bm25plus": 1.0}


@dataclass(frozen=True, slots=True)
class BM25Params:
    """Ranking parameters; the defaults are rank_bm25's ``BM25Okapi`` defaults."""

    algorithm: str = "bm25okapi"
    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25  # BM25Okapi only: idf floor as a fraction of the mean idf
    delta: float | None = None  # BM25L / BM25+ only; None means the algorithm's default

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"unknown ranking algorithm {self.algorithm!r} (choose from {', '.join(ALGORITHMS)})"
            )
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError("BM25 needs k1 >= 0 and 0 <= b <= 1")

    @property
    def resolved_delta(self) -> float:
        return _DEFAULT_DELTA[self.algorithm] if self.delta is None else self.delta


@dataclass(frozen=True, slots=True)
class ScoredSentences:
    """The sentences a query touched, with their scores (unordered)."""

    ids: np.ndarray  # sentence ids (int32 or int64), unique
    scores: np.ndarray  # float64, same length


class InvertedIndex:
    """Postings per term plus sentence lengths; knows BM25 and nothing about text."""

    def __init__(
        self,
        vocabulary: Sequence[str],
        indptr: np.ndarray,
        sentence_ids: np.ndarray,
        tf: np.ndarray,
        lengths: np.ndarray,
        params: BM25Params | None = None,
        weights: np.ndarray | None = None,
        term_ids: dict[str, int] | None = None,
    ) -> None:
        """``weights``, when given, must be what :func:`bm25_weights` gives for these arrays and ``params``
        (the cache keeps them, so that opening an index reads neither ``tf`` nor ``sentence_ids`` whole);
        ``term_ids``, when given, must be ``vocabulary`` inverted (a caller that has it saves a pass)."""
        self.vocabulary = list(vocabulary)
        self.term_ids: dict[str, int] = (
            term_ids if term_ids is not None else {term: i for i, term in enumerate(self.vocabulary)}
        )
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.sentence_ids = sentence_ids
        self.tf = tf
        self.lengths = lengths
        self._scratch_lock = threading.Lock()
        self._free_scratch: list[tuple[np.ndarray, np.ndarray]] = []
        self.set_params(params or BM25Params(), weights)

    @property
    def n_sentences(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def document_frequency(self) -> np.ndarray:
        return np.diff(self.indptr)

    # -- building -------------------------------------------------------------------------------------

    @classmethod
    def from_term_lists(
        cls, term_lists: Iterable[Sequence[str]], params: BM25Params | None = None
    ) -> InvertedIndex:
        """Index one list of terms per sentence (the simple path; the corpus build uses ``from_arrays``)."""
        vocabulary: dict[str, int] = {}
        token_terms: list[int] = []
        lengths: list[int] = []
        for terms in term_lists:
            lengths.append(len(terms))
            for term in terms:
                token_terms.append(vocabulary.setdefault(term, len(vocabulary)))
        length_array = np.asarray(lengths, dtype=np.int32)
        token_sentences = np.repeat(np.arange(len(lengths), dtype=np.int64), length_array)
        return cls.from_arrays(
            list(vocabulary), np.asarray(token_terms, dtype=np.int64), token_sentences, length_array, params
        )

    @classmethod
    def from_arrays(
        cls,
        vocabulary: Sequence[str],
        token_terms: np.ndarray,
        token_sentences: np.ndarray,
        lengths: np.ndarray,
        params: BM25Params | None = None,
    ) -> InvertedIndex:
        """Build postings from one (term id, sentence id) pair per token, in any order."""
        n_terms = len(vocabulary)
        n_sentences = len(lengths)
        keys = token_terms.astype(np.int64) * max(n_sentences, 1) + token_sentences.astype(np.int64)
        keys, tf = np.unique(keys, return_counts=True)  # sorted by term, then sentence
        term_of = keys // max(n_sentences, 1)
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_of, minlength=n_terms), out=indptr[1:])
        sentence_ids = (keys % max(n_sentences, 1)).astype(np.int32)
        tf_dtype = np.uint16 if tf.size == 0 or tf.max() < 65535 else np.uint32
        return cls(
            vocabulary, indptr, sentence_ids, tf.astype(tf_dtype), np.asarray(lengths, np.int32), params
        )

    # -- BM25 -----------------------------------------------------------------------------------------

    def set_params(self, params: BM25Params, weights: np.ndarray | None = None) -> None:
        """(Re)derive idf and per-posting weights; cheap enough to run at every start."""
        self.params = params
        n = self.n_sentences
        df = self.document_frequency.astype(np.float64)
        if params.algorithm == "bm25okapi":
            idf = np.log(n - df + 0.5) - np.log(df + 0.5) if n else np.zeros_like(df)
            if idf.size:
                floor = params.epsilon * (float(idf.sum()) / idf.size)
                idf = np.where(idf < 0, floor, idf)
        elif params.algorithm == "bm25l":
            idf = math.log(n + 1) - np.log(df + 0.5)
        else:
            idf = np.log((n + 1) / np.maximum(df, 1))
        self.idf = idf
        self._avgdl = float(np.mean(self.lengths)) if self.n_sentences else 0.0
        if weights is None:  # worked out per term on first use (see the module docstring)
            self._weights = np.empty(len(self.tf), dtype=np.float32)
            self._weighed = np.zeros(len(self.vocabulary), dtype=bool)
        else:
            self._weights = weights
            self._weighed = None
        # BM25+ gives every sentence idf * delta per query term, matched or not.
        self.base = idf * params.resolved_delta if params.algorithm == "bm25plus" else np.zeros_like(idf)

    @property
    def weights(self) -> np.ndarray:
        """Every posting's weight (the tf part of its BM25 score, times idf at query time), as float32."""
        if self._weighed is not None:
            # All in one pass (the terms already weighed get the same numbers again): a term at a time
            # would be a Python loop over the whole vocabulary.
            self._weights[:] = bm25_weights(self.tf, self.sentence_ids, self.lengths, self.params)
            self._weighed = None
        return self._weights

    def _term_weights(self, term_id: int) -> np.ndarray:
        """The weights of one term's postings, worked out now if no query asked for them before. Two
        threads may both work them out: they write the same numbers."""
        lo, hi = int(self.indptr[term_id]), int(self.indptr[term_id + 1])
        weighed = self._weighed
        if weighed is not None and not weighed[term_id]:
            self._weights[lo:hi] = bm25_weights(
                self.tf[lo:hi], self.sentence_ids[lo:hi], self.lengths, self.params, avgdl=self._avgdl
            )
            weighed[term_id] = True
        return self._weights[lo:hi]

    def coverage(self, sentence_id: int, term_ids: Sequence[int]) -> float:
        """The share of the query's weight (idf, floored, once per repeat) that one sentence matches."""
        matched = total = 0.0
        for term_id in term_ids:
            mass = max(float(self.idf[term_id]), MIN_COVERAGE_WEIGHT)
            total += mass
            postings = self.postings(term_id)
            where = int(np.searchsorted(postings, sentence_id))
            if where < postings.size and int(postings[where]) == sentence_id:
                matched += mass
        return matched / total if total else 0.0

    def postings(self, term_id: int) -> np.ndarray:
        return self.sentence_ids[self.indptr[term_id] : self.indptr[term_id + 1]]

    def score(self, term_ids: Sequence[int], weights: Sequence[float] | None = None) -> ScoredSentences:
        """Score every sentence holding at least one of ``term_ids`` (repeats count once per repeat).

        ``weights``, parallel to ``term_ids``, scales each term's contribution (1.0 each when omitted: plain
        BM25); the question expansion gives its extra terms a weight below 1."""
        counts: dict[int, float] = {}
        for i, term_id in enumerate(term_ids):
            counts[term_id] = counts.get(term_id, 0) + (1 if weights is None else weights[i])
        if not counts:
            return ScoredSentences(np.zeros(0, dtype=np.int64), np.zeros(0))
        constant = sum(float(self.base[t]) * m for t, m in counts.items())
        # Longest postings first: the first term's sentences are all new, so it needs no "seen" check.
        order = sorted(counts, key=lambda t: self.indptr[t] - self.indptr[t + 1])
        first = order[0]
        lo, hi = self.indptr[first], self.indptr[first + 1]
        first_ids = self.sentence_ids[lo:hi]
        first_scores = self._term_weights(first) * (self.idf[first] * counts[first])
        if len(order) == 1:  # one term: its postings are the answer, no scratch vector needed
            return ScoredSentences(first_ids, first_scores.astype(np.float64) + constant)
        buffers = self._acquire_buffers()
        scores, seen = buffers
        scores[first_ids] = first_scores
        seen[first_ids] = True
        touched_parts = [first_ids]
        for term_id in order[1:]:
            lo, hi = self.indptr[term_id], self.indptr[term_id + 1]
            ids = self.sentence_ids[lo:hi]
            scores[ids] += self._term_weights(term_id) * (self.idf[term_id] * counts[term_id])
            new = ids[~seen[ids]]
            seen[new] = True
            touched_parts.append(new)
        touched = np.concatenate(touched_parts)
        result = ScoredSentences(touched, scores[touched] + constant if constant else scores[touched])
        scores[touched] = 0.0
        seen[touched] = False
        # Only clean buffers go back: after an exception above they are simply dropped.
        self._release_buffers(buffers)
        return result

    def score_sentences(
        self, ids: np.ndarray, term_ids: Sequence[int], weights: Sequence[float] | None = None
    ) -> np.ndarray:
        """The :meth:`score` of just these sentences (0 for one holding no term): a binary search per term
        in its postings, for the few candidates another stage found."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros(ids.size)
        counts: dict[int, float] = {}
        for i, term_id in enumerate(term_ids):
            counts[term_id] = counts.get(term_id, 0) + (1 if weights is None else weights[i])
        held = np.zeros(ids.size, dtype=bool)
        for term_id, count in counts.items():
            lo, hi = int(self.indptr[term_id]), int(self.indptr[term_id + 1])
            if lo == hi:
                continue
            postings = self.sentence_ids[lo:hi]
            where = np.minimum(np.searchsorted(postings, ids), hi - lo - 1)
            found = postings[where] == ids
            out[found] += self._term_weights(term_id)[where[found]] * (self.idf[term_id] * count)
            held |= found
        constant = sum(float(self.base[t]) * m for t, m in counts.items())
        return np.where(held, out + constant, 0.0) if constant else out

    def dense_scores(self, term_ids: Sequence[int]) -> np.ndarray:
        """Scores of all sentences, as ``rank_bm25``'s ``get_scores`` returns them."""
        dense = np.zeros(self.n_sentences)
        scored = self.score(term_ids)
        dense += sum(float(self.base[t]) for t in term_ids)
        dense[scored.ids] = scored.scores
        return dense

    def _acquire_buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """Scratch vectors (all zero) for one scoring; as many sets exist as searches ever ran at once.

        They are written through once when made: ``np.zeros`` maps its pages lazily, and faulting them in
        one by one under scattered writes made the first queries ten times slower.
        """
        with self._scratch_lock:
            if self._free_scratch:
                return self._free_scratch.pop()
        scores = np.empty(self.n_sentences)
        scores.fill(0.0)
        seen = np.empty(self.n_sentences, dtype=bool)
        seen.fill(False)
        return scores, seen

    def _release_buffers(self, buffers: tuple[np.ndarray, np.ndarray]) -> None:
        with self._scratch_lock:
            self._free_scratch.append(buffers)


_WEIGHT_CHUNK = 1 << 20  # postings per step: keeps the float64 temporaries of a big build small


def bm25_weights(
    tf: np.ndarray,
    sentence_ids: np.ndarray,
    lengths: np.ndarray,
    params: BM25Params,
    avgdl: float | None = None,
) -> np.ndarray:
    """The tf part of each posting's BM25 score (times idf at query time), as float32. ``avgdl`` is the
    mean of ``lengths`` (given by a caller that weighs a few postings at a time)."""
    k1, b, delta = params.k1, params.b, params.resolved_delta
    if avgdl is None:
        avgdl = float(np.mean(lengths)) if len(lengths) else 0.0
    weights = np.empty(len(tf), dtype=np.float32)
    for lo in range(0, len(tf), _WEIGHT_CHUNK):
        hi = min(lo + _WEIGHT_CHUNK, len(tf))
        f = np.asarray(tf[lo:hi], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            norm = 1 - b + b * np.asarray(lengths)[sentence_ids[lo:hi]] / avgdl if avgdl else 1 - b + 0 * f
            if params.algorithm == "bm25okapi":
                chunk = f * (k1 + 1) / (f + k1 * norm)
            elif params.algorithm == "bm25l":
                ctd = f / norm
                chunk = f * (k1 + 1) * (ctd + delta) / (k1 + ctd + delta)
            else:
                chunk = f * (k1 + 1) / (k1 * norm + f)
        weights[lo:hi] = np.nan_to_num(chunk)
    return weights


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (id, score) pairs, best first; ties broken by the lower id for stable answers.

    The order is total (score descending, then id ascending), so ``top_k(.., k)`` is always the first k of
    ``top_k(.., n)`` for any n >= k: pages cut from it never repeat or skip. ``argpartition`` alone picks
    arbitrarily among the scores tied at the k-th place, so those are chosen by id here."""
    if k <= 0 or ids.size == 0:
        return ids[:0], scores[:0]
    if ids.size > k:
        part = np.argpartition(-scores, k - 1)[:k]
        threshold = scores[part].min()
        above = np.flatnonzero(scores > threshold)
        tied = np.flatnonzero(scores == threshold)
        room = k - above.size  # at least 1: the k-th best itself is tied at the threshold
        if tied.size > room:
            tied = tied[np.argpartition(ids[tied], room - 1)[:room]]
        part = np.concatenate([above, tied])
        ids, scores = ids[part], scores[part]
    order = np.lexsort((ids, -scores))
    return ids[order], scores[order]

"""The fuse stage: BM25 candidates and nearest-by-meaning candidates -> one ranking.

BM25 alone misses the sentence that says it in other words; embeddings alone miss the rare name or number
the question turns on. The fused score of a candidate is a weighted mix of both signals, each on a 0..1
scale: ``(1 - w) * bm25 / best_bm25 + w * cosine``. A linear mix of normalised scores beat reciprocal rank
fusion on the tuning questions (RRF throws away how far apart two scores are), as it did in published
comparisons of hybrid retrieval.

Candidates are the best ``candidates`` of each side; each is scored on both (a BM25 score is computed for a
sentence found by meaning only, a cosine for one found by words only). The rest of the BM25 matches follow
them, in BM25 order, so that totals and later pages still cover every sentence that shares a word.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from retrieval.index import top_k
from retrieval.semantic import DenseScores


@dataclass(frozen=True, slots=True)
class SemanticSettings:
    """Whether and how meaning takes part in the ranking (see the module docstring)."""

    enabled: bool = True
    weight: float = 0.6  # w: the share of the fused score that comes from the cosine
    candidates: int = 100  # taken from each side before fusing
    min_similarity: float = 0.35  # a sentence that shares no word with the question needs this cosine
    method: str = "ideal"  # how BM25 and cosine are put on one scale: "ideal", "minmax", "max" or "rrf"
    rrf_k: int = 60
    context_weight: float = 0.3  # a neighbour's BM25 (same document, next to it) lends this share
    short_terms: int = 0  # a sentence with fewer terms than this is scaled down (a heading, "See also X.")
    title_weight: float = 0.4  # the question's BM25 against a sentence's document title lends this share
    title_similarity: float = 0.3  # and the cosine of the question to that title, added to the sentence's
    weak_similarity: float = 0.35  # a confidence below this: "only weak matches"
    date_weight: float = 0.2  # a sentence whose document is dated in a year the question names gains this
    date_after: float = 0.5  # and this share of it when dated the year after (a report on that year)

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 1:
            raise ValueError("the semantic weight must be between 0 and 1")
        if self.candidates < 1:
            raise ValueError("semantic candidates must be at least 1")


NO_SEMANTIC = SemanticSettings(enabled=False)


def _mix(
    bm25: np.ndarray, cosine: np.ndarray, settings: SemanticSettings, full_match: float | None
) -> np.ndarray:
    w = settings.weight
    if settings.method == "rrf":
        return (1 - w) * _rrf(bm25, settings.rrf_k) * (bm25 > 0) + w * _rrf(cosine, settings.rrf_k)
    top = float(bm25.max())
    if settings.method.startswith("ideal") and full_match:
        top = full_match
    lexical = np.minimum(bm25 / top, 1.0) if top > 0 else np.zeros_like(bm25)
    if settings.method in ("max", "ideal-raw"):
        return (1 - w) * lexical + w * cosine
    known = ~np.isnan(cosine)
    if not known.any():
        return lexical
    low, high = float(cosine[known].min()), float(cosine[known].max())
    meaning = (cosine - low) / (high - low) if high > low else np.ones_like(cosine)
    # A sentence not embedded yet (just added to the corpus): its words speak for its meaning too.
    return (1 - w) * lexical + w * np.where(known, meaning, lexical)


def _rrf(values: np.ndarray, k: int) -> np.ndarray:
    ranks = np.empty(values.size)
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, values.size + 1)
    return 1.0 / (k + ranks)


_CONTEXT_SOURCES = 20  # the best BM25 matches whose neighbours become candidates too


@dataclass(frozen=True, slots=True)
class Fused:
    ids: np.ndarray  # int64, unique
    scores: np.ndarray  # float64: the fused score (higher is better)


@dataclass(frozen=True, slots=True)
class Neighbourhood:
    """What the fuse stage may know of where sentences stand: their neighbours in their own document
    (-1 at a document's edge) and their lengths in terms."""

    previous: Callable[[np.ndarray], np.ndarray]
    next: Callable[[np.ndarray], np.ndarray]
    lengths: np.ndarray
    title_bm25: Callable[[np.ndarray], np.ndarray] | None = None  # the question against each one's title
    date_match: Callable[[np.ndarray], np.ndarray] | None = None  # 0..1: dated when the question says


def fuse(
    lexical_ids: np.ndarray,
    lexical_scores: np.ndarray,
    dense: DenseScores,
    bm25_of: Callable[[np.ndarray], np.ndarray],
    cosine_of: Callable[[np.ndarray], np.ndarray],
    settings: SemanticSettings,
    neighbourhood: Neighbourhood | None = None,
    full_match: float | None = None,
) -> Fused:
    """One ranking of the union of both sides' best. ``bm25_of(ids)`` and ``cosine_of(ids)`` give the
    other signal for candidates that only one side found. ``full_match`` is the BM25 score of a sentence
    of average length holding every question word once (the "ideal" method scales BM25 by it, so a
    question whose words the corpus barely has leans on meaning)."""
    lexical_ids = np.asarray(lexical_ids, dtype=np.int64)
    best_lexical, _ = top_k(lexical_ids, lexical_scores, settings.candidates)
    meaning = dense.ids[dense.cosines >= settings.min_similarity][: settings.candidates]
    ids = np.union1d(best_lexical, meaning).astype(np.int64)
    context = neighbourhood is not None and settings.context_weight > 0
    if context and ids.size:
        assert neighbourhood is not None
        # The sentence after (or before) a good match may be the answer that needs it: "He resigned."
        best = best_lexical[:_CONTEXT_SOURCES]
        around = np.concatenate([neighbourhood.next(best), neighbourhood.previous(best)])
        ids = np.union1d(ids, around[around >= 0]).astype(np.int64)
    if not ids.size:
        return Fused(ids, np.zeros(0))
    bm25 = np.asarray(bm25_of(ids), dtype=np.float64)
    cosine = np.asarray(cosine_of(ids), dtype=np.float64)
    if context:
        assert neighbourhood is not None
        lent = np.zeros(ids.size)
        for side in (neighbourhood.previous(ids), neighbourhood.next(ids)):
            present = side >= 0
            if present.any():
                lent[present] = np.maximum(lent[present], bm25_of(side[present]))
        bm25 = bm25 + settings.context_weight * lent
    if neighbourhood is not None and neighbourhood.title_bm25 is not None and settings.title_weight > 0:
        bm25 = bm25 + settings.title_weight * neighbourhood.title_bm25(ids)
    fused = _mix(bm25, cosine, settings, full_match)
    if neighbourhood is not None and neighbourhood.date_match is not None and settings.date_weight > 0:
        fused = fused + settings.date_weight * neighbourhood.date_match(ids)
    if neighbourhood is not None and settings.short_terms > 0:
        lengths = neighbourhood.lengths[ids].astype(np.float64)
        fused = fused * np.minimum(1.0, (lengths + 1) / (settings.short_terms + 1))
    # Every other BM25 match, after the candidates, still in BM25 order.
    rest = ~np.isin(lexical_ids, ids, assume_unique=True)
    if rest.any():
        tail_scores = np.asarray(lexical_scores, dtype=np.float64)[rest]
        scale = float(tail_scores.max()) or 1.0
        floor = max(float(fused.min()), 0.0) * 0.999  # strictly below every candidate, never negative
        ids = np.concatenate([ids, lexical_ids[rest]])
        fused = np.concatenate([fused, floor * tail_scores / scale])
    return Fused(ids, fused)

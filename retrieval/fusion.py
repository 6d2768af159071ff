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
    weight: float = 0.5  # w: the share of the fused score that comes from the cosine
    candidates: int = 100  # taken from each side before fusing
    min_similarity: float = 0.35  # a sentence that shares no word with the question needs this cosine
    weak_similarity: float = 0.4  # the best cosine in the corpus below this: "only weak matches"

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 1:
            raise ValueError("the semantic weight must be between 0 and 1")
        if self.candidates < 1:
            raise ValueError("semantic candidates must be at least 1")


NO_SEMANTIC = SemanticSettings(enabled=False)


@dataclass(frozen=True, slots=True)
class Fused:
    ids: np.ndarray  # int64, unique
    scores: np.ndarray  # float64: the fused score (higher is better)


def fuse(
    lexical_ids: np.ndarray,
    lexical_scores: np.ndarray,
    dense: DenseScores,
    bm25_of: Callable[[np.ndarray], np.ndarray],
    cosine_of: Callable[[np.ndarray], np.ndarray],
    settings: SemanticSettings,
) -> Fused:
    """One ranking of the union of both sides' best. ``bm25_of(ids)`` and ``cosine_of(ids)`` give the
    other signal for candidates that only one side found."""
    lexical_ids = np.asarray(lexical_ids, dtype=np.int64)
    best_lexical, _ = top_k(lexical_ids, lexical_scores, settings.candidates)
    meaning = dense.ids[dense.cosines >= settings.min_similarity][: settings.candidates]
    ids = np.union1d(best_lexical, meaning).astype(np.int64)
    if not ids.size:
        return Fused(ids, np.zeros(0))
    bm25 = np.asarray(bm25_of(ids), dtype=np.float64)
    cosine = np.asarray(cosine_of(ids), dtype=np.float64)
    top = float(bm25.max()) if bm25.size else 0.0
    lexical_part = bm25 / top if top > 0 else np.zeros_like(bm25)
    fused = (1 - settings.weight) * lexical_part + settings.weight * cosine
    # Every other BM25 match, after the candidates, still in BM25 order.
    rest = ~np.isin(lexical_ids, ids, assume_unique=True)
    if rest.any():
        tail_scores = np.asarray(lexical_scores, dtype=np.float64)[rest]
        scale = float(tail_scores.max()) or 1.0
        floor = max(float(fused.min()), 0.0) * 0.999  # strictly below every candidate, never negative
        ids = np.concatenate([ids, lexical_ids[rest]])
        fused = np.concatenate([fused, floor * tail_scores / scale])
    return Fused(ids, fused)

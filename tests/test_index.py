"""The inverted index scores exactly as rank_bm25 does, on random corpora, for all three algorithms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25L, BM25Okapi, BM25Plus

from retrieval.index import BM25Params, InvertedIndex, bm25_weights, top_k

REFERENCE = {"bm25okapi": BM25Okapi, "bm25l": BM25L, "bm25plus": BM25Plus}


def random_corpus(rng: np.random.Generator, n_sentences: int, vocabulary: int) -> list[list[str]]:
    # Zipf-like term frequencies, so some terms appear in more than half the sentences (negative idf).
    weights = 1.0 / np.arange(1, vocabulary + 1)
    weights /= weights.sum()
    corpus = []
    for _ in range(n_sentences):
        length = int(rng.integers(1, 25))
        corpus.append([f"t{i}" for i in rng.choice(vocabulary, size=length, p=weights)])
    return corpus


@pytest.mark.parametrize("algorithm", sorted(REFERENCE))
@pytest.mark.parametrize("seed", range(6))
def test_scores_equal_rank_bm25(algorithm: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    corpus = random_corpus(rng, int(rng.integers(5, 400)), int(rng.integers(3, 300)))
    reference = REFERENCE[algorithm](corpus)
    index = InvertedIndex.from_term_lists(corpus, BM25Params(algorithm=algorithm))
    for _ in range(20):
        query = [f"t{i}" for i in rng.integers(0, 320, size=int(rng.integers(1, 6)))]  # some unknown terms
        expected = reference.get_scores(query)
        term_ids = [index.term_ids[t] for t in query if t in index.term_ids]
        np.testing.assert_allclose(index.dense_scores(term_ids), expected, rtol=1e-6, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    corpus=st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=8), min_size=1, max_size=30),
    query=st.lists(st.sampled_from("abcdefghxy"), min_size=1, max_size=5),
    k1=st.floats(0.1, 3.0),
    b=st.floats(0.0, 1.0),
)
def test_okapi_equivalence_property(corpus: list[list[str]], query: list[str], k1: float, b: float) -> None:
    if not any(corpus):
        return  # rank_bm25 divides by a zero average length
    reference = BM25Okapi(corpus, k1=k1, b=b)
    index = InvertedIndex.from_term_lists(corpus, BM25Params(k1=k1, b=b))
    term_ids = [index.term_ids[t] for t in query if t in index.term_ids]
    ours, expected = index.dense_scores(term_ids), reference.get_scores(query)
    # rank_bm25 divides 0 by 0 for an empty sentence when b == 1; it matches nothing, so its score is 0 here.
    undefined = np.isnan(expected)
    assert np.all(ours[undefined] == 0)
    np.testing.assert_allclose(ours[~undefined], expected[~undefined], rtol=1e-6, atol=1e-9)


def test_score_touches_only_matching_sentences_and_leaves_scratch_clean() -> None:
    index = InvertedIndex.from_term_lists([["a", "b"], ["b"], ["c"], []])
    first = index.score([index.term_ids["b"]])
    assert sorted(first.ids.tolist()) == [0, 1]
    assert index.coverage(0, [index.term_ids["b"]]) == 1.0
    # "b" is in half the sentences (idf 0, floored to 0.01 for coverage); "c" is rare and weighs the most.
    expected = 0.01 / (0.01 + math.log(3.5 / 1.5))
    assert index.coverage(0, [index.term_ids["b"], index.term_ids["c"]]) == pytest.approx(expected)
    assert index.coverage(2, [index.term_ids["b"]]) == 0.0
    again = index.score([index.term_ids["b"]])
    np.testing.assert_array_equal(np.sort(first.scores), np.sort(again.scores))
    both = index.score([index.term_ids["a"], index.term_ids["c"]])
    assert sorted(both.ids.tolist()) == [0, 2]
    assert index.score([]).ids.size == 0


def test_top_k_orders_best_first_with_stable_ties() -> None:
    ids = np.array([5, 3, 9, 1, 7])
    scores = np.array([1.0, 3.0, 3.0, 0.5, 2.0])
    best_ids, best_scores = top_k(ids, scores, 3)
    assert best_ids.tolist() == [3, 9, 7]
    assert best_scores.tolist() == [3.0, 3.0, 2.0]
    assert top_k(ids, scores, 0)[0].size == 0
    assert top_k(ids, scores, 10)[0].tolist() == [3, 9, 7, 5, 1]


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown ranking algorithm"):
        BM25Params(algorithm="tfidf")
    with pytest.raises(ValueError):
        BM25Params(b=1.5)
    assert BM25Params(algorithm="bm25plus").resolved_delta == 1.0


@pytest.mark.parametrize("algorithm", sorted(REFERENCE))
def test_weights_worked_out_per_term_equal_those_of_the_whole_index(algorithm: str) -> None:
    rng = np.random.default_rng(7)
    corpus = random_corpus(rng, 300, 80)
    params = BM25Params(algorithm=algorithm)
    lazy = InvertedIndex.from_term_lists(corpus, params)
    whole = bm25_weights(lazy.tf, lazy.sentence_ids, lazy.lengths, params)
    eager = InvertedIndex(
        lazy.vocabulary, lazy.indptr, lazy.sentence_ids, lazy.tf, lazy.lengths, params, weights=whole
    )
    ids = np.arange(0, 300, 7)
    for _ in range(10):  # some terms weighed by score(), some by score_sentences(), the rest by .weights
        term_ids = [int(t) for t in rng.integers(0, len(lazy.vocabulary), size=3)]
        got, expected = lazy.score(term_ids), eager.score(term_ids)
        np.testing.assert_array_equal(got.ids, expected.ids)
        np.testing.assert_array_equal(got.scores, expected.scores)
        np.testing.assert_array_equal(
            lazy.score_sentences(ids, term_ids[:1]), eager.score_sentences(ids, term_ids[:1])
        )
    np.testing.assert_array_equal(lazy.weights, whole)
    fresh = InvertedIndex.from_term_lists(corpus, params)  # nothing asked yet: all at once
    np.testing.assert_array_equal(fresh.weights, whole)

"""A composed index of several segments, less removed documents, is the one-shot index of what is left."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from rank_bm25 import BM25Okapi, BM25Plus

from retrieval import BM25Params, Document, IndexSettings, SearchIndex, load_corpus
from retrieval.compose import Part, compose
from retrieval.semantic import SentenceVectors
from tests.conftest import SHIPPED_CORPUS
from tests.test_semantic import ToyEncoder

WORDS = [
    "harbour", "ship", "storm", "lighthouse", "keeper", "cable", "island", "orchard", "apple", "harvest",
    "cider", "press", "minister", "council", "budget", "research", "science", "river", "bridge", "flood",
    "school", "teacher", "train", "station", "market", "price", "wheat",
]  # fmt: skip

QUESTIONS = [
    "harbour storm", "apple harvest cider", "minister council budget", "river flood bridge", "research",
    "school teacher", '"harbour storm"', "price -wheat", "market after:2020-01-01", "train station sort:new",
    "science on:2021", "keeper", "shipp storms", "lighthouse keeper counted",
]  # fmt: skip


def random_documents(seed: int, n: int, prefix: str) -> list[Document]:
    rng = np.random.default_rng(seed)
    documents = []
    for i in range(n):
        paragraphs = []
        for _ in range(int(rng.integers(1, 4))):
            sentences = []
            for _ in range(int(rng.integers(1, 5))):
                words = rng.choice(WORDS, size=int(rng.integers(2, 12)))
                sentences.append(" ".join(words).capitalize() + ".")
            if rng.random() < 0.2:
                sentences.append("The same sentence in many documents.")
            paragraphs.append(" ".join(sentences))
        day = dt.date(2018, 1, 1) + dt.timedelta(days=int(rng.integers(0, 2000)))
        date = day if rng.random() < 0.9 else None
        documents.append(Document(f"{prefix}{i:03d}.txt", f"Title {prefix}{i} {WORDS[i % len(WORDS)]}", date,
                                  tuple(paragraphs)))  # fmt: skip
    return documents


def shipped_documents() -> list[Document]:
    return list(load_corpus(SHIPPED_CORPUS).documents)


def assert_same_index(composed: SearchIndex, oneshot: SearchIndex) -> None:
    a, b = composed._inverted, oneshot._inverted
    assert sorted(a.vocabulary) == sorted(b.vocabulary)
    for term in b.vocabulary:
        np.testing.assert_array_equal(a.postings(a.term_ids[term]), b.postings(b.term_ids[term]))
        np.testing.assert_allclose(a.idf[a.term_ids[term]], b.idf[b.term_ids[term]])
    np.testing.assert_array_equal(np.asarray(a.lengths), np.asarray(b.lengths))
    assert len(composed._store) == len(oneshot._store)
    assert [composed._store.text(i) for i in range(len(oneshot._store))] == [
        oneshot._store.text(i) for i in range(len(oneshot._store))
    ]

    def places(index: SearchIndex) -> list[tuple]:
        return [(d.name, d.title, d.date, d.first_sentence, d.n_sentences) for d in index._store.documents]

    assert places(composed) == places(oneshot)
    np.testing.assert_array_equal(composed._store.duplicate_count, oneshot._store.duplicate_count)
    # The same sentences share a duplicate group (the groups' numbers may differ): one-to-one.
    ga, gb = np.asarray(composed._store.duplicate_group), np.asarray(oneshot._store.duplicate_group)
    pairs = np.unique(np.stack([ga, gb]), axis=1).shape[1]
    assert pairs == np.unique(ga).size == np.unique(gb).size
    np.testing.assert_array_equal(composed._store.sentence_paragraph, oneshot._store.sentence_paragraph)
    for question in QUESTIONS:
        for offset in (0, 3):
            x, y = composed.search(question, k=4, offset=offset), oneshot.search(question, k=4, offset=offset)
            assert [(h.sentence_id, h.text, h.date, h.title) for h in x.hits] == [
                (h.sentence_id, h.text, h.date, h.title) for h in y.hits
            ], question
            assert [h.score for h in x.hits] == pytest.approx([h.score for h in y.hits], rel=1e-6)
            assert (x.total, x.weak, x.error, x.unknown_words, x.suggestions, x.confidence) == (
                y.total,
                y.weak,
                y.error,
                y.unknown_words,
                y.suggestions,
                y.confidence,
            )
    assert composed.timeline(["harbour", "apple"]) == oneshot.timeline(["harbour", "apple"])


@pytest.mark.parametrize("seed", range(4))
def test_composed_equals_one_shot(seed: int) -> None:
    documents = random_documents(seed, 30, "a") + shipped_documents() + random_documents(seed + 100, 12, "b")
    cuts = sorted(np.random.default_rng(seed).choice(np.arange(1, len(documents)), size=3, replace=False))
    batches = np.split(np.arange(len(documents)), cuts)
    chosen = np.random.default_rng(seed + 7).choice(len(documents), 5, replace=False)
    removed = {documents[i].name for i in chosen}
    settings = IndexSettings()
    parts = []
    for batch in batches:
        segment = SearchIndex.build([documents[i] for i in batch], settings)
        parts.append(Part(segment, frozenset(documents[i].name for i in batch) & frozenset(removed)))
    composed = compose(parts, settings)
    oneshot = SearchIndex.build([d for d in documents if d.name not in removed], settings)
    assert composed.composition is not None
    assert_same_index(composed, oneshot)


@pytest.mark.parametrize("algorithm", ["bm25okapi", "bm25plus"])
def test_composed_scores_are_rank_bm25s(algorithm: str) -> None:
    settings = IndexSettings(ranking=BM25Params(algorithm=algorithm))
    documents = random_documents(5, 40, "c")
    removed = frozenset({"c003.txt", "c031.txt"})
    composed = compose([
        Part(SearchIndex.build(documents[:25], settings), removed),
        Part(SearchIndex.build(documents[25:], settings), removed),
    ], settings)  # fmt: skip
    store = composed._store
    analyzer = settings.analysis_config().analyzer()
    terms = [analyzer.terms(store.text(i)) for i in range(len(store))]
    reference = {"bm25okapi": BM25Okapi, "bm25plus": BM25Plus}[algorithm](terms)
    inverted = composed._inverted
    for query in (["harbour"], ["appl", "harvest"], ["minist", "bridg", "flood"]):
        ids = [inverted.term_ids[t] for t in query if t in inverted.term_ids]
        np.testing.assert_allclose(inverted.dense_scores(ids), reference.get_scores(query), rtol=1e-6)


def test_a_single_whole_segment_is_itself() -> None:
    segment = SearchIndex.build(random_documents(1, 5, "d"))
    assert compose([Part(segment)], segment.settings) is segment
    assert segment.sentence_key(2) == (segment.fingerprint, 2)
    assert segment.find_sentence(segment.fingerprint, 2) == 2
    assert segment.find_sentence("someone else", 2) is None


def test_sentence_addresses_outlive_a_composition() -> None:
    settings = IndexSettings()
    documents = random_documents(2, 12, "e")
    first = SearchIndex.build(documents[:8], settings)
    second = SearchIndex.build(documents[8:], settings)
    before = compose([Part(first), Part(second)], settings)
    gone = documents[1].name
    after = compose([Part(first, frozenset({gone})), Part(second)], settings)
    assert before.fingerprint != after.fingerprint
    for sentence_id in range(len(before._store)):
        segment, local = before.sentence_key(sentence_id)
        now = after.find_sentence(segment, local)
        if before._store.document_of(sentence_id).name == gone:
            assert now is None
        else:
            assert now is not None and after._store.text(now) == before._store.text(sentence_id)
            assert after.sentence_key(now) == (segment, local)
    assert after.find_sentence(first.fingerprint, 10**6) is None


def test_phrase_scan_skips_removed_documents() -> None:
    settings = IndexSettings()
    with_phrase = Document("x.txt", "X", None, ("It was to be or not to be.",))
    other = Document("y.txt", "Y", None, ("Nothing here at all.",))
    later = Document("z.txt", "Z", None, ("Then to be or not to be again.",))
    composed = compose([
        Part(SearchIndex.build([with_phrase, other], settings), frozenset({"x.txt"})),
        Part(SearchIndex.build([later], settings)),
    ], settings)  # fmt: skip
    result = composed.search('"to be or not to be"')
    assert [h.text for h in result.hits] == ["Then to be or not to be again."]


def test_composed_vectors_are_the_segments_own(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = IndexSettings()
    documents = random_documents(3, 20, "f")
    parts = [Part(SearchIndex.build(documents[:12], settings), frozenset({"f002.txt"})),
             Part(SearchIndex.build(documents[12:], settings))]  # fmt: skip
    composed = compose(parts, settings)
    oneshot = SearchIndex.build([d for d in documents if d.name != "f002.txt"], settings)
    encoder = ToyEncoder()
    build = composed.vector_build(encoder, tmp_path)
    assert not build.complete and build.total == len(composed._store)
    vectors = build.run()
    assert vectors is not None and build.complete and build.done == build.total
    reference = SentenceVectors(encoder.encode([oneshot._store.text(i) for i in range(len(oneshot._store))]),
                                encoder.model_id)  # fmt: skip
    question = encoder.encode_query("harbour storm apple")
    got, expected = vectors.nearest(question, 7), reference.nearest(question, 7)
    np.testing.assert_allclose(got.cosines, expected.cosines, rtol=1e-3)
    ids = np.array([0, 5, len(composed._store) - 1])
    np.testing.assert_allclose(vectors.cosines(ids, question), reference.cosines(ids, question), atol=1e-3)
    mixed = np.random.default_rng(3).permutation(len(composed._store))  # both segments, in no order
    mixed = np.concatenate([mixed, mixed[:4]])  # and some twice
    np.testing.assert_allclose(vectors.cosines(mixed, question), reference.cosines(mixed, question),
                               atol=1e-3)
    np.testing.assert_allclose(vectors.cosines_all(question), reference.cosines_all(question), atol=1e-3)
    # A second composition of the same segments embeds nothing again.
    calls = encoder.calls
    again = compose([parts[0], Part(parts[1].index, frozenset({"f013.txt"}))], settings)
    rebuilt = again.vector_build(encoder, tmp_path)
    assert rebuilt.complete and encoder.calls == calls


def test_composed_titles_follow_the_documents(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = IndexSettings()
    documents = random_documents(4, 10, "g")
    parts = [Part(SearchIndex.build(documents[:6], settings), frozenset({"g001.txt"})),
             Part(SearchIndex.build(documents[6:], settings))]  # fmt: skip
    composed = compose(parts, settings)
    encoder = ToyEncoder()
    build = composed.vector_build(encoder, tmp_path)
    build.run()
    expected = encoder.encode([d.title for d in composed._store.documents])
    np.testing.assert_allclose(build.titles, expected, atol=1e-3)


def test_a_segment_not_embedded_yet_ranks_by_its_words(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = IndexSettings()
    old = SearchIndex.build(random_documents(6, 30, "h"), settings)
    walrus = Document("zz.txt", "Walrus news", None, ("A walrus crossed the harbour bridge.",))
    new = SearchIndex.build([walrus], settings)
    encoder = ToyEncoder()
    old.vector_build(encoder, tmp_path).run()  # the old segment was embedded before; the new one is not
    composed = compose([Part(old), Part(new)], settings)
    build = composed.vector_build(encoder, tmp_path)
    assert not build.complete and build.vectors is not None  # meaning goes on for the rest
    composed.attach_vectors(build)
    assert composed.semantic_ready
    question = encoder.encode_query("walrus harbour")
    new_id = len(composed._store) - 1
    cosines = build.vectors.cosines(np.array([0, new_id]), question)
    assert not np.isnan(cosines[0]) and np.isnan(cosines[1])
    assert new_id not in build.vectors.nearest(question, 50).ids.tolist()
    assert composed.search("walrus harbour").hits[0].text == "A walrus crossed the harbour bridge."
    build.run()
    assert build.complete and not np.isnan(build.vectors.cosines(np.array([new_id]), question)).any()
    assert composed.search("walrus harbour").hits[0].text == "A walrus crossed the harbour bridge."


def test_composing_again_with_other_removals_forgets_the_earlier_ones() -> None:
    """A segment's postings less its removed documents are kept for the next composition: a new set of
    removed documents must not reuse them."""
    settings = IndexSettings()
    documents = random_documents(11, 20, "a")
    big = SearchIndex.build(documents, settings)
    small = SearchIndex.build(random_documents(12, 3, "b"), settings)
    names = [d.name for d in documents]
    for removed in ({names[2]}, {names[2]}, {names[2], names[9]}, set(), {names[0]}):
        composed = compose([Part(big, frozenset(removed)), Part(small)], settings)
        kept = [d for d in documents if d.name not in removed] + random_documents(12, 3, "b")
        assert_same_index(composed, SearchIndex.build(kept, settings))


def test_a_joined_blob_reads_within_and_across_its_parts() -> None:
    from retrieval.store import JoinedBlob, TextBlob

    whole = b"harbour" + b"" + b"storm" + b"apple"
    blob = JoinedBlob([TextBlob(b"harbour"), TextBlob(b""), TextBlob(b"storm"), TextBlob(b"apple")])
    assert blob.size == len(whole) and blob.all() == whole
    for start in range(len(whole) + 1):
        for end in range(start, len(whole) + 1):
            assert blob.read(start, end) == whole[start:end], (start, end)

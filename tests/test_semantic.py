"""The dense and fuse stages, with a toy encoder (bag of letters) so that no model is needed here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from retrieval import NO_EXPANSION, Document, IndexSettings, SearchIndex, SemanticSettings
from retrieval.fusion import fuse
from retrieval.semantic import DenseScores, SentenceVectors

SYNONYMS = {
    "quit": "resign", "resigned": "resign", "stepped": "resign", "sue": "court", "court": "court",
    "seaport": "harbour", "quayside": "harbour",  # in WordNet "seaport" is a "harbour"; "quayside" is not
}

_TOY_STOP_WORDS = {"the", "did", "they", "on", "a", "was", "down", "in"}


class ToyEncoder:
    """Words -> a concept vector: "quit" and "stepped down" land on the same axis, as a real model would."""

    model_id = "toy@1"
    _axes: dict[str, int] = {}  # noqa: RUF012 - one axis per word, shared: every instance is the same model
    dimension = 64

    def __init__(self) -> None:
        self.calls = 0


    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, np.float32)
        for word in text.lower().replace(".", " ").replace("?", " ").split():
            if word in _TOY_STOP_WORDS:
                continue
            word = SYNONYMS.get(word, word)
            vector[self._axes.setdefault(word, len(self._axes)) % self.dimension] += 1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        self.calls += 1
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension))

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)


def test_nearest_is_best_first_with_ties_by_id() -> None:
    matrix = np.asarray([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    found = SentenceVectors(matrix, "m").nearest(np.asarray([1, 0], np.float32), 3)
    assert found.ids.tolist() == [0, 2, 3]
    assert found.cosines.tolist() == pytest.approx([1, 1, 0.6])


def test_fuse_mixes_both_signals_and_keeps_every_bm25_match() -> None:
    lexical_ids, lexical_scores = np.asarray([5, 6, 7]), np.asarray([4.0, 2.0, 1.0])
    dense = DenseScores(np.asarray([9, 6, 1]), np.asarray([0.9, 0.5, 0.1], np.float32))
    cosine = {5: 0.1, 6: 0.5, 7: 0.2, 9: 0.9, 1: 0.1}
    bm25 = {5: 4.0, 6: 2.0, 7: 1.0, 9: 0.0, 1: 0.0}
    settings = SemanticSettings(weight=0.5, candidates=2, min_similarity=0.3, method="max")
    fused = fuse(
        lexical_ids, lexical_scores, dense,
        lambda ids: np.asarray([bm25[int(i)] for i in ids]),
        lambda ids: np.asarray([cosine[int(i)] for i in ids]),
        settings,
    )
    ranking = dict(zip(fused.ids.tolist(), fused.scores.tolist(), strict=True))
    assert set(ranking) == {5, 6, 7, 9}  # 1 is below min_similarity; 7 is past the candidates but kept
    assert ranking[5] == pytest.approx(0.5 * 1.0 + 0.5 * 0.1)
    assert ranking[9] == pytest.approx(0.5 * 0.9)
    assert ranking[7] < min(ranking[5], ranking[6], ranking[9])  # the tail comes after every candidate
    assert ranking[7] > 0


def test_minmax_scales_the_cosines_over_the_candidates() -> None:
    ids, bm25 = np.asarray([1, 2]), np.asarray([2.0, 1.0])
    dense = DenseScores(np.asarray([2, 1]), np.asarray([0.6, 0.4], np.float32))
    cosine = {1: 0.4, 2: 0.6}
    fused = fuse(
        ids, bm25, dense,
        lambda some: np.asarray([{1: 2.0, 2: 1.0}[int(i)] for i in some]),
        lambda some: np.asarray([cosine[int(i)] for i in some]),
        SemanticSettings(weight=0.6, min_similarity=0.0),
    )
    ranking = dict(zip(fused.ids.tolist(), fused.scores.tolist(), strict=True))
    assert ranking[1] == pytest.approx(0.4 * 1.0 + 0.6 * 0.0)
    assert ranking[2] == pytest.approx(0.4 * 0.5 + 0.6 * 1.0)


DOCS = [
    Document("a.txt", "Politics", None, ("The minister stepped down on Friday. The weather was mild.",)),
    Document("b.txt", "Council", None, ("Residents took legal action in court. A minister opened a ward.",)),
]


@pytest.fixture()
def index() -> SearchIndex:
    return SearchIndex.build(DOCS, IndexSettings(expansion=NO_EXPANSION))


def test_meaning_finds_what_words_miss_and_shows_no_bold(index: SearchIndex, tmp_path: Path) -> None:
    assert index.search("did they quit").empty  # no shared word
    build = index.vector_build(ToyEncoder(), tmp_path)
    index.attach_vectors(build)
    assert not index.semantic_ready
    assert index.search("did they quit").empty  # BM25 alone until the vectors are complete
    build.run()
    result = index.search("did they quit")
    assert result.hits[0].text == "The minister stepped down on Friday."
    assert result.hits[0].spans == ()  # found by meaning alone: nothing to highlight
    assert result.confidence is not None and result.confidence > 0.3
    both = index.search("minister quit")
    assert both.hits[0].text == "The minister stepped down on Friday."  # words and meaning agree
    assert {both.hits[0].text[a:b] for a, b in both.hits[0].spans} == {"minister"}


def test_nonsense_finds_nothing_and_low_confidence(index: SearchIndex) -> None:
    build = index.vector_build(ToyEncoder(), None)
    index.attach_vectors(build)
    build.run()
    result = index.search("zebra xylophone")
    assert result.empty and (result.confidence or 0) < 0.35


def test_vectors_are_cached_and_a_stopped_build_resumes(index: SearchIndex, tmp_path: Path) -> None:
    encoder = ToyEncoder()
    build = index.vector_build(encoder, tmp_path)
    build.run()
    again = index.vector_build(ToyEncoder(), tmp_path)
    assert again.complete and np.array_equal(again.vectors.matrix, build.vectors.matrix)  # type: ignore[union-attr]
    # A partial file (a build stopped half way, with a torn last row) is resumed, not started over.
    folder = next(tmp_path.glob("vectors-*"))
    full = (folder / "vectors.f16").read_bytes()
    (folder / "meta.json").unlink()
    (folder / "vectors.f16").unlink()
    (folder / "vectors.partial").write_bytes(full[: len(full) // 2 + 3])
    resumed = index.vector_build(ToyEncoder(), tmp_path)
    assert 0 < resumed.done < resumed.total
    resumed.run()
    assert (folder / "vectors.f16").read_bytes() == full


def test_semantic_off_is_plain_bm25(index: SearchIndex) -> None:
    settings = IndexSettings(expansion=NO_EXPANSION, semantic=SemanticSettings(enabled=False))
    off = SearchIndex.build(DOCS, settings)
    build = off.vector_build(ToyEncoder(), None)
    off.attach_vectors(build)
    build.run()
    assert off.search("did they quit").empty
    assert [h.score for h in off.search("minister").hits] == [h.score for h in index.search("minister").hits]


def test_vectors_too_many_to_scan_rerank_the_word_matches_only(
    index: SearchIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retrieval.semantic

    monkeypatch.setattr(retrieval.semantic, "EXHAUSTIVE_BYTES", 0)
    build = index.vector_build(ToyEncoder(), tmp_path)
    build.run()
    assert build.vectors is not None and not build.vectors.exhaustive  # float16 rows left on disk
    index.attach_vectors(build)
    assert index.search("did they quit").empty  # nothing shares a word, and the rest is not scanned
    result = index.search("minister quit")
    assert result.hits[0].text == "The minister stepped down on Friday."
    assert result.confidence is not None and result.confidence > 0.3
    ids = np.asarray([2, 0, 1])
    query = ToyEncoder().encode_query("minister")
    expected = np.asarray(build.vectors.matrix[ids]).astype(np.float32) @ query
    assert build.vectors.cosines(ids, query) == pytest.approx(expected)  # read with pread, not the map


def test_meaning_stays_off_for_a_corpus_in_another_language(tmp_path: Path) -> None:
    from retrieval import open_vectors

    settings = IndexSettings(language="french", stop_words=False)
    documents = [Document("f.txt", "Le port", None, ("Le port était calme ce soir.",))]
    index = SearchIndex.build(documents, settings)
    assert open_vectors(index, tmp_path) is None
    assert index.search("port").hits and not index.semantic_ready


def test_a_documents_title_lends_its_meaning_to_its_sentences(tmp_path: Path) -> None:
    documents = [
        Document("orchard.txt", "Orchard notes", None, ("It was closed for the winter.",)),
        Document("harbour.txt", "Harbour report", None, ("It was closed for the winter.",)),
    ]
    index = SearchIndex.build(documents, IndexSettings(expansion=NO_EXPANSION))
    build = index.vector_build(ToyEncoder(), tmp_path)
    assert not build.complete
    build.run()
    assert build.complete and build.titles is not None and build.titles.shape == (2, ToyEncoder.dimension)
    index.attach_vectors(build)
    # "seaport" is the harbour by meaning only (no title shares a word with the question).
    assert index.search("seaport closed").hits[0].doc == "harbour.txt"
    plain = SearchIndex.build(documents, IndexSettings(
        expansion=NO_EXPANSION, semantic=SemanticSettings(title_similarity=0.0)))  # fmt: skip
    plain.attach_vectors(plain.vector_build(ToyEncoder(), tmp_path))
    assert plain.search("seaport closed").hits[0].doc == "orchard.txt"  # a tie, broken by the lower id
    # Embeddings made before titles were: the titles are made by the next run, the rest is kept.
    (next(tmp_path.glob("vectors-*")) / "titles.f16").unlink()
    rebuilt = SearchIndex.build(documents, IndexSettings(expansion=NO_EXPANSION))
    again = rebuilt.vector_build(ToyEncoder(), tmp_path)
    assert again.vectors is not None and again.titles is None and not again.complete
    encoder_calls = again.encoder.calls  # type: ignore[attr-defined]
    again.run()
    assert again.complete and again.encoder.calls == encoder_calls + 1  # type: ignore[attr-defined]


def test_a_year_in_the_question_favours_the_documents_of_that_year(tmp_path: Path) -> None:
    import datetime as dt

    documents = [  # the same sentence but for a name, equally good for every question here
        Document(f"{year}.txt", "Annual report", dt.date(year, 12, 1),
                 (f"The harbour was closed for the winter, said {name}.",))
        for year, name in ((1876, "Smith"), (1877, "Jones"), (1878, "Brown"), (1879, "Green"))
    ]

    def ranked(question: str, settings: SemanticSettings | None = None) -> list[str]:
        index = SearchIndex.build(documents, IndexSettings(
            expansion=NO_EXPANSION, semantic=settings or SemanticSettings()))  # fmt: skip
        build = index.vector_build(ToyEncoder(), tmp_path)
        build.run()
        index.attach_vectors(build)
        assert index.semantic_ready
        return [hit.doc for hit in index.search(question, k=4).hits]

    # The question's year decides, then the year after it (a report on
    # that year), then the rest in their usual order.
    assert ranked("harbour closed in 1877") == ["1877.txt", "1878.txt", "1876.txt", "1879.txt"]
    assert ranked("harbour closed 1876 or 1879")[:2] == ["1876.txt", "1879.txt"]
    # No year, a year the corpus does not span, or the signal off: the usual order.
    usual = ["1876.txt", "1877.txt", "1878.txt", "1879.txt"]
    assert ranked("harbour closed") == usual
    assert ranked("harbour closed in 1990") == usual
    assert ranked("harbour closed in 1877", SemanticSettings(date_weight=0.0)) == usual


def test_a_decade_in_the_question_names_each_of_its_years(tmp_path: Path) -> None:
    import datetime as dt

    documents = [
        Document(f"{year}.txt", "Annual report", dt.date(year, 12, 1),
                 (f"The harbour was closed for the winter, said {name}.",))
        for year, name in ((1868, "Smith"), (1873, "Jones"), (1880, "Brown"))
    ]
    index = SearchIndex.build(documents, IndexSettings(expansion=NO_EXPANSION))
    build = index.vector_build(ToyEncoder(), tmp_path)
    build.run()
    index.attach_vectors(build)
    for question in ("harbour closed in the 1870s", "harbour closed in the 1870's"):
        # 1873 is in it; 1880, the year after its last, reports on it; 1868 is not.
        assert [hit.doc for hit in index.search(question, k=3).hits] == ["1873.txt", "1880.txt", "1868.txt"]

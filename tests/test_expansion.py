"""The expand stage: each kind of extra term, weighted below the question's own; only terms the corpus has."""

from __future__ import annotations

import pytest

from retrieval import Document, IndexSettings, SearchIndex
from retrieval.analysis import Analyzer
from retrieval.expansion import (
    COMPOUND,
    NO_EXPANSION,
    QUESTION,
    SPELLING,
    TYPO,
    WORD_FORM,
    QueryExpander,
    english_words,
    max_edit_distance,
)
from retrieval.index import InvertedIndex

SENTENCES = [
    "The color of the harbor changed at dusk.",
    "The minister went home after the vote.",
    "Two mice lived under the government building.",
    "The government spent more on research this year.",
    "Government research grants rose sharply.",
    "The peacekeepers left the valley in spring.",
    "A data base of every ship was kept.",
    "Thorvaldsen carved the statue.",
]


@pytest.fixture(scope="module")
def expander() -> QueryExpander:
    analyzer = Analyzer()
    inverted = InvertedIndex.from_term_lists([analyzer.terms(s) for s in SENTENCES])
    return QueryExpander(analyzer, inverted.term_ids, inverted.document_frequency)


def extra(expander: QueryExpander, text: str) -> dict[str, tuple[str, float]]:
    return {t.term: (t.source, t.weight) for t in expander.expand(text) if t.source != QUESTION}


def test_question_terms_come_first_with_weight_one_and_repeats(expander: QueryExpander) -> None:
    terms = expander.expand("harbour harbour")
    assert [(t.term, t.weight, t.source) for t in terms[:2]] == [("harbour", 1.0, QUESTION)] * 2


def test_british_spelling_finds_the_american_one(expander: QueryExpander) -> None:
    assert extra(expander, "colour of the harbour") == {"color": (SPELLING, 0.9), "harbor": (SPELLING, 0.9)}


def test_irregular_forms_the_stemmer_misses(expander: QueryExpander) -> None:
    assert extra(expander, "where did the minister go")["went"][0] == WORD_FORM
    assert extra(expander, "a mouse")["mice"][0] == WORD_FORM


def test_typos_are_corrected_against_the_corpus_only(expander: QueryExpander) -> None:
    assert extra(expander, "goverment")["govern"][0] == TYPO
    assert "research" in extra(expander, "reserch")
    assert extra(expander, "thorvaldson") == {"thorvaldsen": (TYPO, 0.8)}  # a name: from the corpus
    assert extra(expander, "government") == {}  # a known word is left alone
    assert extra(expander, "cat") == {}  # too short to guess from


def test_compounds_joined_and_split(expander: QueryExpander) -> None:
    assert extra(expander, "peace keepers") == {"peacekeep": (COMPOUND, 0.8)}
    assert extra(expander, "database") == {"data": (COMPOUND, 0.8), "base": (COMPOUND, 0.8)}


def test_nothing_is_invented(expander: QueryExpander) -> None:
    assert extra(expander, "theatre behaviour") == {}


def test_edit_distance_grows_with_the_word() -> None:
    assert [max_edit_distance(w) for w in ("cat", "word", "kingdom", "government")] == [0, 1, 1, 2]


def test_expansion_off_is_plain_bm25() -> None:
    documents = [Document(f"{i}.txt", f"D{i}", None, (s,)) for i, s in enumerate(SENTENCES)]
    plain = SearchIndex.build(documents, IndexSettings(expansion=NO_EXPANSION))
    expanded = SearchIndex.build(documents)
    assert plain.search("colour").empty
    assert expanded.search("colour").hits[0].text.startswith("The color of the harbor")
    exact = expanded.search("harbor colour").hits[0]
    assert exact.text.startswith("The color of the harbor")
    assert {exact.text[a:b] for a, b in exact.spans} == {"color", "harbor"}  # the variant is highlighted


def test_a_pasted_paragraph_of_unknown_words_is_looked_up_only_so_far(
    expander: QueryExpander, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up: list[str] = []
    typo_terms = expander._typo_terms
    monkeypatch.setattr(expander, "_typo_terms", lambda w, t: looked_up.append(w) or typo_terms(w, t))
    question = "goverment " + " ".join(f"zzq{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(40))
    typos = [t for t in expander.expand(question) if t.source == TYPO]
    assert len(looked_up) == 8 and looked_up[0] == "goverment"
    assert [t.term for t in typos] == ["govern"]


def test_a_typo_near_a_written_word_beats_a_stem_as_near() -> None:
    # "expedtion" is one letter from "expedition" as written, and its stem "expedt" one letter from the
    # stem "expect", which is more frequent: the word as written decides.
    sentences = ["We expect rain.", "They expected more.", "Nobody expects it.", "The expedition left."]
    analyzer = Analyzer()
    inverted = InvertedIndex.from_term_lists([analyzer.terms(s) for s in sentences])
    words = lambda: (w.term for s in sentences for w in analyzer.words(s))  # noqa: E731
    expander = QueryExpander(analyzer, inverted.term_ids, inverted.document_frequency, surface_words=words)
    fixes = expander.corrections("expedtion", analyzer.terms("expedtion")[0])
    assert fixes[0] == analyzer.terms("expedition")[0]


def test_a_dictionary_word_is_not_taken_for_a_slip(expander: QueryExpander) -> None:
    assert expander.misspelled("reserch") and expander.misspelled("fronteirs")
    assert not expander.misspelled("superstate") and not expander.misspelled("forebears")
    empty = InvertedIndex.from_term_lists([])
    french = QueryExpander(Analyzer(language="french"), empty.term_ids, empty.document_frequency)
    assert french.misspelled("superstate")  # no dictionary for it: any unknown word may be a slip


def test_a_question_does_not_wait_long_for_a_typo_index_being_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """While another thread builds the typo index (the bot's warm-up after a start), a question gives up on
    typo fixes after TYPO_INDEX_WAIT instead of waiting the seconds the build takes at a million sentences."""
    import time

    import retrieval.expansion as expansion_module

    analyzer = Analyzer()
    inverted = InvertedIndex.from_term_lists([analyzer.terms(s) for s in SENTENCES])
    expander = QueryExpander(analyzer, inverted.term_ids, inverted.document_frequency)
    monkeypatch.setattr(expansion_module, "TYPO_INDEX_WAIT", 0.05)
    expander._symspell_lock.acquire()  # as a build in progress holds it
    try:
        started = time.monotonic()
        assert "research" not in extra(expander, "reserch")
        assert time.monotonic() - started < 2.0
    finally:
        expander._symspell_lock.release()
    assert "research" in extra(expander, "reserch")  # built now, by this question: it waits for nobody


def test_the_head_of_an_unknown_compound() -> None:
    """A word the corpus lacks, made of two English words, brings in its last part when the corpus has it
    ("superpower" -> power, at a lower weight than a compound split into two corpus words); a word that
    is not such a compound brings nothing."""
    analyzer = Analyzer()
    sentences = [*SENTENCES, "The power of the state grew.", "A ship sailed home."]
    inverted = InvertedIndex.from_term_lists([analyzer.terms(s) for s in sentences])
    expander = QueryExpander(analyzer, inverted.term_ids, inverted.document_frequency)
    assert extra(expander, "superpower") == {"power": (COMPOUND, pytest.approx(0.6))}
    assert extra(expander, "warship") == {"ship": (COMPOUND, pytest.approx(0.6))}
    assert extra(expander, "quizzically") == {}
    assert extra(expander, "peace keepers")["peacekeep"] == (COMPOUND, 0.8)  # the parts' own rule first


def test_the_english_dictionary_is_read_once() -> None:
    # Asked for each question word that might be misspelled: read again each time, it cost ~60 ms a call
    # (a question with an unknown word took 70-180 ms at a million sentences instead of 5-7).
    assert english_words() is english_words()
    assert "government" in english_words()

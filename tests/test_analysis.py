"""The analyzer: each rule on its own, then properties that must hold for any text."""

from __future__ import annotations

import unicodedata

import pytest
import Stemmer
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval import analysis
from retrieval.analysis import ENGLISH_STOP_WORDS, Analyzer, Token


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


@pytest.fixture(scope="module")
def plain() -> Analyzer:
    return Analyzer(stop_words=False, stemming=False)


def spans(text: str, tokens: list[Token]) -> list[tuple[str, str]]:
    return [(t.term, text[t.start : t.end]) for t in tokens]


# -- tokenising and normalising ----------------------------------------------------------------------------


def test_case_folding(plain: Analyzer) -> None:
    assert plain.terms("Research RESEARCH research") == ["research"] * 3
    assert plain.terms("Straße") == ["strasse"]  # casefold, not lower


def test_nfkc(plain: Analyzer) -> None:
    assert plain.terms("ﬁnance ＡＢＣ ２０２３") == ["finance", "abc", "2023"]
    text = "the ﬁnance of ＡＢＣ"
    assert spans(text, plain.tokens(text)) == [
        ("the", "the"), ("finance", "ﬁnance"), ("of", "of"), ("abc", "ＡＢＣ")
    ]


def test_combining_marks_stay_in_the_word(plain: Analyzer) -> None:
    decomposed = "cafe\u0301 society"
    assert plain.terms(decomposed) == ["café", "society"]
    assert plain.terms(decomposed) == plain.terms("café society")


def test_nfkc_that_makes_several_tokens_keeps_the_span(plain: Analyzer) -> None:
    text = "item ⑴ here"
    assert spans(text, plain.tokens(text)) == [("item", "item"), ("1", "⑴"), ("here", "here")]


def test_punctuation_hyphens_and_underscores_split(plain: Analyzer) -> None:
    assert plain.terms("well-known (snake_case), e.g. U.S.; end.") == [
        "well", "known", "snake", "case", "e", "g", "u", "s", "end"
    ]


def test_apostrophes_and_possessives(plain: Analyzer) -> None:
    assert plain.terms("Xi’s policy and Xi's plan") == ["xi", "policy", "and", "xi", "plan"]
    assert plain.terms("don't, O’Brien") == ["don't", "o'brien"]
    assert plain.terms("the students' union") == ["the", "students", "union"]
    assert plain.terms("'quoted'") == ["quoted"]
    text = "Xi’s"
    assert spans(text, plain.tokens(text)) == [("xi", "Xi’s")]


def test_numbers(plain: Analyzer) -> None:
    assert plain.terms("In 2023, the 15th report") == ["in", "2023", "the", "15th", "report"]
    assert plain.terms("3.5 times 1,000 and 10,000,000") == ["3.5", "times", "1000", "and", "10000000"]
    assert plain.terms("version 2.0.1 ends 2023.") == ["version", "2.0.1", "ends", "2023"]


def test_number_punctuation_that_is_not_a_number(plain: Analyzer) -> None:
    assert plain.terms("1,2 and 2020,2021 and 3,50") == ["1", "2", "and", "2020", "2021", "and", "3", "50"]
    assert plain.terms("cats,dogs and a.b") == ["cats", "dogs", "and", "a", "b"]
    text = "see e.g here"
    assert spans(text, plain.tokens(text)) == [("see", "see"), ("e", "e"), ("g", "g"), ("here", "here")]


# -- stop words and stemming -------------------------------------------------------------------------------


def test_stop_words_removed(analyzer: Analyzer) -> None:
    assert analyzer.terms("The state of the art") == ["state", "art"]
    assert analyzer.terms("What’s that? It's not") == []  # curly and straight apostrophes alike


def test_stop_word_list() -> None:
    assert 160 <= len(ENGLISH_STOP_WORDS) <= 180
    assert {"the", "a", "of", "don't", "itself"} <= ENGLISH_STOP_WORDS
    assert "research" not in ENGLISH_STOP_WORDS


def test_stop_word_check_is_before_stemming(analyzer: Analyzer) -> None:
    # "doing" is a stop word, while its stem "do" is too; "this" stems to "thi", which is not.
    assert analyzer.terms("doing this") == []
    assert analyzer.is_stop_word("THE") and analyzer.is_stop_word("Don’t")
    assert not analyzer.is_stop_word("research")
    assert not Analyzer(stop_words=False).is_stop_word("the")


def test_stemming(analyzer: Analyzer) -> None:
    assert analyzer.terms("researching researchers Research") == ["research"] * 3
    assert analyzer.stem("researching") == "research"
    assert analyzer.stem("Researching") == "research"
    assert Analyzer(stemming=False).stem("Researching") == "researching"
    assert Analyzer(stemming=False).terms("researching") == ["researching"]


def test_stop_words_off_keeps_them() -> None:
    assert Analyzer(stop_words=False).terms("the state") == ["the", "state"]


def test_words_keep_stop_words_and_skip_stemming(analyzer: Analyzer) -> None:
    text = "The Researchers’ view of Xi’s"
    assert spans(text, analyzer.words(text)) == [
        ("the", "The"), ("researchers", "Researchers"), ("view", "view"), ("of", "of"), ("xi", "Xi’s")
    ]


# -- CJK ---------------------------------------------------------------------------------------------------


def test_cjk_bigrams(analyzer: Analyzer) -> None:
    assert analyzer.terms("基础研究") == ["基础", "础研", "研究"]
    assert analyzer.terms("研") == ["研"]
    assert analyzer.terms("研究，很重要。") == ["研究", "很重", "重要"]


def test_cjk_spans_and_words(analyzer: Analyzer) -> None:
    text = "关于基础研究的报告"
    tokens = analyzer.tokens(text)
    assert all(text[t.start : t.end] == t.term for t in tokens)
    assert [t.term for t in tokens][:3] == ["关于", "于基", "基础"]
    words = analyzer.words(text)
    assert [w.term for w in words] == list(text)
    assert [(w.start, w.end) for w in words] == [(i, i + 1) for i in range(len(text))]


def test_cjk_mixed_with_latin(analyzer: Analyzer) -> None:
    text = "GPT4模型 and 中国’s economy"
    assert spans(text, analyzer.tokens(text)) == [
        ("gpt4", "GPT4"), ("模型", "模型"), ("中国", "中国"), ("economi", "economy")
    ]


def test_kana_hangul_and_half_width(analyzer: Analyzer) -> None:
    assert analyzer.terms("カタカナ") == ["カタ", "タカ", "カナ"]
    assert analyzer.terms("ｶﾀｶﾅ") == analyzer.terms("カタカナ")  # half-width katakana, NFKC
    assert analyzer.terms("한국어") == ["한국", "국어"]
    text = "x ｶﾀ"
    assert spans(text, analyzer.tokens(text)) == [("x", "x"), ("カタ", "ｶﾀ")]


# -- the API around it -------------------------------------------------------------------------------------


def test_fingerprint_follows_the_settings() -> None:
    prints = {
        Analyzer(stop_words=s, stemming=t).fingerprint for s in (True, False) for t in (True, False)
    }
    assert len(prints) == 4
    assert Analyzer().fingerprint == Analyzer().fingerprint
    assert str(analysis.ANALYSIS_VERSION) in Analyzer().fingerprint


def test_language_checks() -> None:
    with pytest.raises(ValueError, match="unknown language"):
        Analyzer(language="klingon")
    with pytest.raises(ValueError, match="no stop-word list for 'esperanto'"):
        Analyzer(language="esperanto")
    assert Analyzer(language="German", stop_words=False).terms("Häuser") == ["haus"]


def test_english_analysis_is_unchanged() -> None:
    # The index cache keys on the fingerprint: English must analyse, and fingerprint, exactly as before
    # the other languages got stop-word lists (else ANALYSIS_VERSION would have to be bumped).
    english = Analyzer()
    assert english.fingerprint == (
        f"analysis-1|english|stop=1|stem=1|snowball={Stemmer.version()}|unicode={unicodedata.unidata_version}"
    )
    assert analysis.stop_words_for("english") is ENGLISH_STOP_WORDS
    terms = english.terms("The cats aren't on the mat, are they? Xi’s research")
    assert terms == ["cat", "mat", "xi", "research"]


def test_other_languages_have_packaged_stop_word_lists() -> None:
    french = Analyzer(language="french")
    assert french.terms("Les chats et le poisson") == ["chat", "poisson"]
    assert french.is_stop_word("Les") and not french.is_stop_word("chat")
    german = Analyzer(language="GERMAN")
    assert german.terms("Die Häuser und der Garten") == ["haus", "gart"]
    assert Analyzer(language="russian").terms("Дом и сад") == ["дом", "сад"]
    # a packaged list is part of the fingerprint, so a new release of the list rebuilds the index
    assert "stoplist=" in french.fingerprint
    assert french.fingerprint != Analyzer(language="french", stop_words=False).fingerprint
    assert "stoplist=" not in Analyzer(language="french", stop_words=False).fingerprint


def test_every_stop_word_list_is_normalised_like_tokens() -> None:
    languages = analysis.stop_word_languages()
    assert {"english", "porter", "french", "german", "spanish", "dutch", "dutch_porter"} <= set(languages)
    assert "esperanto" not in languages and "greek" not in languages  # no list; Ancient Greek only
    for language in languages:
        stop = analysis.stop_words_for(language)
        assert stop, language
        assert all(word == analysis._normalise(word) for word in stop), language
        # a stop word as written in a text is dropped, whatever its case
        analyzer = Analyzer(language=language, stemming=False)
        word = next(w for w in sorted(stop) if analyzer.words(w) and analyzer.words(w)[0].term == w)
        assert analyzer.terms(word.upper()) == [], (language, word)


def test_a_french_corpus_is_searchable_end_to_end(tmp_path) -> None:
    from bot.config import load_settings
    from retrieval import SearchIndex, load_corpus

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "lettre.txt").write_text(
        "date 1905-03-01 Lettre\n\nLes chats mangent du poisson le vendredi. Le jardin est fleuri.\n",
        encoding="utf-8",
    )
    config = tmp_path / "config.yaml"
    config.write_text("analysis: {language: french}\nranking: {semantic: false}\n", encoding="utf-8")
    settings = load_settings(config)
    index = SearchIndex.build(load_corpus(settings.corpus.path).documents, settings.index_settings())
    result = index.search("chat")
    assert result.error is None
    assert [hit.text for hit in result.hits] == ["Les chats mangent du poisson le vendredi."]
    assert [result.hits[0].text[a:b] for a, b in result.hits[0].spans] == ["chats"]
    assert index.search("les").empty  # a stop word alone finds nothing


def test_memo_gives_the_same_terms_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "MEMO_LIMIT", 8)
    fresh = Analyzer()
    text = " ".join(f"word{i} researching 基础研究 e.g" for i in range(40))
    first = fresh.terms(text)
    assert first == fresh.terms(text) == [t.term for t in fresh.tokens(text)]
    assert len(fresh._single) <= 8 and len(fresh._stems) <= 8


def test_empty_and_symbol_only(analyzer: Analyzer) -> None:
    assert analyzer.terms("") == [] and analyzer.tokens("") == [] and analyzer.words("") == []
    assert analyzer.terms("— … ??? _ 🙂") == []


# -- properties --------------------------------------------------------------------------------------------

_ALPHABET = st.sampled_from(
    [*"ab Z9_.,'’-\"“” \n\t", "ﬁ", "Ａ", "２", "\u0301", "基", "础", "ｶ", "ﾞ", "한", "⑴", "㊀", "ß", "İ", "ǅ"]
)
_TEXT = st.one_of(st.text(), st.text(_ALPHABET), st.lists(_ALPHABET).map("".join))


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_any_text_analyses_with_spans_inside(text: str) -> None:
    for analyzer in (Analyzer(), Analyzer(stop_words=False, stemming=False)):
        terms = analyzer.terms(text)
        tokens = analyzer.tokens(text)
        words = analyzer.words(text)
        assert [t.term for t in tokens] == terms
        assert all(t.term for t in tokens) and all(w.term for w in words)
        for token in (*tokens, *words):
            assert 0 <= token.start < token.end <= len(text)
        assert [w.start for w in words] == sorted(w.start for w in words)
        assert [w.end for w in words] == sorted(w.end for w in words)
        assert analyzer.terms(text) == terms  # the memo changes nothing


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(max_codepoint=127)))
def test_ascii_regex_equals_the_unicode_one_on_ascii(text: str) -> None:
    assert analysis._ASCII_TOKEN.findall(text) == analysis._TOKEN.findall(text)


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from([*"ab1 ,.'\"-", "’", "“", "”", "—", "–", "é"])))
def test_the_ascii_shortcut_of_terms_changes_nothing(text: str) -> None:
    analyzer = Analyzer()
    assert analyzer.terms(text) == [t.term for t in analyzer.tokens(text)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["Research", "the", "Xi’s", "3.5", "基础", "基", "ﬁne", "e.g", "1,000"])))
def test_tokens_point_at_what_they_analyse(words: list[str]) -> None:
    analyzer = Analyzer()
    text = " ".join(words)
    for token in analyzer.tokens(text):
        assert analyzer.terms(text[token.start : token.end]) == [token.term]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.lists(st.sampled_from(["research", "basic", "xi", "研究", "3.5", "2023"])))
def test_matching_tokens_are_the_tokens_with_those_terms(text: str, terms: list[str]) -> None:
    analyzer = Analyzer()
    analyzer.terms(text)  # warm the memo, so both the known-word and the new-word paths are taken
    wanted = set(terms)
    assert analyzer.matching_tokens(text, wanted) == [t for t in analyzer.tokens(text) if t.term in wanted]

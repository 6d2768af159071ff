"""SearchIndex end to end over a small corpus written to disk: ranking, syntax, filters, dedup, highlights."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from rank_bm25 import BM25Okapi

from retrieval import NO_EXPANSION, NO_SEMANTIC, Document, IndexSettings, SearchIndex, load_corpus
from retrieval import build as build_module
from retrieval.analysis import Analyzer

FILES = {
    "ocean.txt": (
        " date 2021-03-04 Ocean Report\n\n"
        "The ocean absorbs heat from the atmosphere. Coral reefs are bleaching across the Pacific.\n\n"
        "Fishermen reported record catches of tuna in 2020. Scientists warn about overfishing."
    ),
    "space.txt": (
        " date 2022-07-01 Space News\n\n"
        "The rocket launched from Florida at dawn. Astronauts will study coral growth in orbit.\n\n"
        "The ocean absorbs heat from the atmosphere."
    ),
    "notes.txt": (
        "Researchers are researching research methods. To be or not to be, that is the question.\n\n"
        "A third sentence follows here. A fourth one closes the note."
    ),
    "china.txt": " date 2023-08-05 基础研究\n\n我们要加强基础研究。科技自立自强是国家发展的战略支撑。",
}


def write_corpus(folder: Path, files: dict[str, str] = FILES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> SearchIndex:
    folder = write_corpus(tmp_path_factory.mktemp("corpus"))
    return SearchIndex.build(load_corpus(folder).documents)


def test_best_quote_with_date_title_and_highlights(index: SearchIndex) -> None:
    result = index.search("coral reefs")
    best = result.hits[0]
    assert best.text == "Coral reefs are bleaching across the Pacific."
    assert best.date == dt.date(2021, 3, 4)
    assert best.title == "Ocean Report"
    assert best.doc == "ocean.txt"
    assert [best.text[a:b] for a, b in best.spans] == ["Coral", "reefs"]
    assert best.score > 0 and not result.weak and result.error is None


def test_stemming_matches_word_forms_and_highlights_them(index: SearchIndex) -> None:
    hit = index.search("research").hits[0]
    assert hit.text.startswith("Researchers are researching research")
    assert hit.date is None
    assert [hit.text[a:b] for a, b in hit.spans] == ["Researchers", "researching", "research"]


def test_identical_sentences_appear_once_with_their_other_places(index: SearchIndex) -> None:
    result = index.search("ocean absorbs heat")
    assert [h.text for h in result.hits].count("The ocean absorbs heat from the atmosphere.") == 1
    assert result.hits[0].duplicates == 1
    assert result.total == 1


def test_exclusion_and_date_filters(index: SearchIndex) -> None:
    assert [h.doc for h in index.search("coral -pacific").hits] == ["space.txt"]
    assert [h.doc for h in index.search("coral after:2022-01-01").hits] == ["space.txt"]
    assert [h.doc for h in index.search("coral year:2021").hits] == ["ocean.txt"]
    assert index.search("coral before:2020-12-31").hits == ()
    assert index.search("research year:2021").hits == ()  # an unknown date never passes a date filter


def test_phrases_match_words_as_written_including_stop_words(index: SearchIndex) -> None:
    assert [h.doc for h in index.search('"not to be"').hits] == ["notes.txt"]
    assert [h.text for h in index.search('"ocean absorbs"').hits] == [
        "The ocean absorbs heat from the atmosphere."
    ]
    assert index.search('"absorbs ocean"').hits == ()
    hit = index.search('"record catches" tuna').hits[0]
    assert "record catches" in [hit.text[a:b] for a, b in hit.spans]
    assert index.search('coral -"coral reefs"').hits[0].doc == "space.txt"


def test_questions_that_cannot_be_answered_say_why(index: SearchIndex) -> None:
    bad_date = index.search("coral after:2023-02-30")
    assert bad_date.error and "2023-02-30" in bad_date.error
    assert "common" in (index.search("the of and what").error or "")
    assert index.search("   ").error
    assert index.search("!!! ??? 😀").error


def test_unknown_words_get_suggestions_and_weak_matches_are_flagged(index: SearchIndex) -> None:
    result = index.search("corel")  # a misspelling: searched as what it is close to, and said so
    assert result.unknown_words == ("corel",)
    assert "coral" in result.suggestions["corel"]
    assert result.hits and "Coral" in result.hits[0].text
    assert index.search("zqxvwk").empty
    weak = index.search("coral zebras giraffes elephants")
    assert weak.hits and weak.weak


def test_pages_and_totals(index: SearchIndex) -> None:
    everything = index.search("ocean coral tuna rocket research", k=100)
    assert everything.total == len(everything.hits) >= 5
    page = index.search("ocean coral tuna rocket research", k=2, offset=2)
    assert [h.sentence_id for h in page.hits] == [h.sentence_id for h in everything.hits[2:4]]
    scores = [h.score for h in everything.hits]
    assert scores == sorted(scores, reverse=True)


def test_context_stays_in_the_document(index: SearchIndex) -> None:
    hit = index.search("coral reefs").hits[0]
    context = index.context(hit.sentence_id, before=5, after=5)
    assert [c.is_hit for c in context].count(True) == 1
    assert {index.hit(c.sentence_id).doc for c in context} == {"ocean.txt"}
    assert len(context) == 4
    with pytest.raises(IndexError):
        index.context(10_000)


def test_chinese_documents_are_searchable(index: SearchIndex) -> None:
    hit = index.search("基础研究").hits[0]
    assert hit.text == "我们要加强基础研究。"
    assert hit.spans
    phrase = index.search('"基础研究"').hits
    assert [h.text for h in phrase] == ["我们要加强基础研究。"]
    assert [phrase[0].text[a:b] for a, b in phrase[0].spans] == ["基础研究"]


def test_stats_and_example_questions(index: SearchIndex) -> None:
    stats = index.stats
    assert (stats.documents, stats.undated_documents) == (4, 1)
    assert (stats.first_date, stats.last_date) == (dt.date(2021, 3, 4), dt.date(2023, 8, 5))
    examples = index.example_questions(3)
    assert examples and all(index.search(q).hits for q in examples)


def test_scores_equal_rank_bm25_over_the_same_terms(index: SearchIndex, tmp_path: Path) -> None:
    """With the expansions and meaning off, the ranking is plain BM25: rank_bm25's very scores."""
    analyzer = Analyzer()
    sentences = [index.context(i, 0, 0)[0].text for i in range(index.stats.sentences)]
    reference = BM25Okapi([analyzer.terms(s) for s in sentences])
    plain_settings = IndexSettings(expansion=NO_EXPANSION, semantic=NO_SEMANTIC)
    plain = SearchIndex.build(load_corpus(write_corpus(tmp_path / "plain")).documents, plain_settings)
    for question in ["coral reefs", "ocean heat", "research", "tuna catches record 2020", "colour went"]:
        expected = reference.get_scores(analyzer.terms(question))
        hits = plain.search(question, k=50).hits
        assert hits or question == "colour went"
        for hit in hits:
            assert hit.score == pytest.approx(expected[hit.sentence_id], rel=1e-6)


def test_parallel_build_equals_serial_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        f"doc{i}.txt": f" date 2020-01-{i + 1:02d} Doc {i}\n\n"
        + FILES["ocean.txt"].split("\n\n", 1)[1]
        + f" Unique word number{i} appears."
        for i in range(12)
    }
    documents = load_corpus(write_corpus(tmp_path / "c", files)).documents
    serial = SearchIndex.build(documents, workers=1)
    monkeypatch.setattr(build_module, "_PARALLEL_MIN_CHARS", 0)
    monkeypatch.setattr(build_module, "_CHUNK_CHARS", 300)
    parallel = SearchIndex.build(documents, workers=2)
    assert parallel.fingerprint == serial.fingerprint
    for question in ["coral", "number7", "tuna overfishing"]:
        a, b = serial.search(question, k=20), parallel.search(question, k=20)
        assert [(h.sentence_id, round(h.score, 9)) for h in a.hits] == [
            (h.sentence_id, round(h.score, 9)) for h in b.hits
        ]


def _twelve_documents(tmp_path: Path) -> list[Document]:
    files = {
        f"doc{i}.txt": f" date 2020-01-{i + 1:02d} Doc {i}\n\n"
        + FILES["ocean.txt"].split("\n\n", 1)[1]
        + f" Unique word number{i} appears."
        for i in range(12)
    }
    return load_corpus(write_corpus(tmp_path / "c", files)).documents


def test_a_large_background_update_is_analysed_in_a_lowered_worker_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = _twelve_documents(tmp_path)
    serial = SearchIndex.build(documents, workers=1)
    calls: list[dict[str, object]] = []
    real = build_module._analyse_in_processes

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append({"workers": args[2], **kwargs})
        return real(*args, **kwargs)

    monkeypatch.setattr(build_module, "_analyse_in_processes", spy)
    assert SearchIndex.build(documents, workers=1).fingerprint == serial.fingerprint
    assert calls == []  # not a background build: in this process
    monkeypatch.setattr(build_module, "_BACKGROUND_PROCESS_CHARS", 0)
    aside = SearchIndex.build(documents, workers=1, background=True)
    assert calls == [{"workers": 1, "lowered": True}]
    assert aside.fingerprint == serial.fingerprint
    assert [h.sentence_id for h in aside.search("tuna number3").hits] == [
        h.sentence_id for h in serial.search("tuna number3").hits
    ]


def test_a_background_update_is_analysed_here_when_no_worker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from concurrent.futures.process import BrokenProcessPool

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise BrokenProcessPool("a child process terminated abruptly")

    documents = _twelve_documents(tmp_path)
    serial = SearchIndex.build(documents, workers=1)
    monkeypatch.setattr(build_module, "_BACKGROUND_PROCESS_CHARS", 0)
    monkeypatch.setattr(build_module, "_analyse_in_processes", broken)
    seen: list[tuple[int, int]] = []
    index = SearchIndex.build(
        documents, workers=1, background=True, progress=lambda done, total: seen.append((done, total))
    )
    assert index.fingerprint == serial.fingerprint
    assert seen[-1][0] == seen[-1][1]
    assert "worker processes failed" in caplog.text


def test_other_ranking_algorithms_are_selectable(tmp_path: Path) -> None:
    from retrieval import BM25Params

    documents = load_corpus(write_corpus(tmp_path / "c")).documents
    for algorithm in ("bm25l", "bm25plus"):
        index = SearchIndex.build(documents, IndexSettings(ranking=BM25Params(algorithm=algorithm)))
        assert index.search("coral reefs").hits[0].text.startswith("Coral reefs")


def test_searching_is_thread_safe(index: SearchIndex) -> None:
    from concurrent.futures import ThreadPoolExecutor

    questions = ["coral", "ocean heat", "research", "tuna", "rocket dawn"] * 40
    expected = {q: [h.sentence_id for h in index.search(q).hits] for q in set(questions)}
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda q: (q, [h.sentence_id for h in index.search(q).hits]), questions))
    assert all(ids == expected[q] for q, ids in results)


def _fruit_market(folder: Path, together: int, apart: int) -> SearchIndex:
    """``together`` sentences with "red apple", ``apart`` with both words not side by side."""
    lines = [f"Stall {i} sold a red apple to customer {i}." for i in range(together)]
    lines += [f"Stall {i} sold an apple that was red to customer {i}." for i in range(apart)]
    (folder / "market.txt").write_text(" date 2020-05-05 Market Day\n\n" + " ".join(lines), encoding="utf-8")
    return SearchIndex.build(load_corpus(folder).documents)


def test_a_phrase_with_few_candidates_gets_an_exact_total(tmp_path: Path) -> None:
    index = _fruit_market(tmp_path, together=40, apart=60)
    result = index.search('"red apple"', 3)
    assert result.total == 40 and not result.total_is_estimate
    assert all("red apple" in hit.text for hit in result.hits)


def test_a_phrase_of_common_words_checks_only_what_the_page_needs(tmp_path: Path) -> None:
    index = _fruit_market(tmp_path, together=1500, apart=1500)
    result = index.search('"red apple"', 3)
    assert result.total_is_estimate
    assert 1000 <= result.total <= 2000  # about half of the 3,000 candidates
    assert len(result.hits) == 3 and all("red apple" in hit.text for hit in result.hits)
    deeper = index.search('"red apple"', 3, offset=60)  # a later page checks further
    assert len(deeper.hits) == 3 and all("red apple" in hit.text for hit in deeper.hits)
    assert not {h.sentence_id for h in deeper.hits} & {h.sentence_id for h in result.hits}


def test_a_phrase_of_stop_words_stops_scanning_once_it_has_enough(tmp_path: Path) -> None:
    lines = [f"Stall {i} is one of the best." for i in range(5000)]
    (tmp_path / "stalls.txt").write_text(" date 2020-05-05 Stalls\n\n" + " ".join(lines), encoding="utf-8")
    index = SearchIndex.build(load_corpus(tmp_path).documents)
    result = index.search('"of the"', 3)
    assert result.total_is_estimate
    assert 3500 <= result.total <= 6500
    assert all("of the" in hit.text for hit in result.hits)


def test_only_phrases_are_said_to_take_long(index: SearchIndex) -> None:
    assert index.may_take_long('"coral reefs"') and index.may_take_long("heat “coral reefs”")
    assert not index.may_take_long("coral reefs -ocean after:2020")
    assert not index.may_take_long("after:notadate")  # an error comes back at once


def _tied_corpus(folder: Path, kind: str) -> SearchIndex:
    """Hundreds of sentences that score the same for "harbour lamp" (same words, same length)."""
    names = [f"{a}{b}" for a in "bcdfghklmnprstvz" for b in ("ax", "ex", "ix", "ox", "ux")]  # 80 nonce words
    files: dict[str, list[str]] = {}
    for i in range(400):
        word = names[i % len(names)] + names[i // len(names)]
        sentence = f"The harbour lamp {word} glowed."
        if kind == "duplicates" and i % 3 == 0:
            sentence = f"The harbour lamp {names[i % 7]} glowed."  # the same text in several places
        if kind == "two levels" and i % 2:
            sentence = f"The harbour lamp {word} glowed near the harbour."
        files.setdefault(f"doc{i % 13:02d}.txt", []).append(sentence)
    for name, lines in files.items():
        (folder / name).write_text(" date 2020-05-05 Harbour\n\n" + "\n\n".join(lines), encoding="utf-8")
    return SearchIndex.build(load_corpus(folder).documents)


@pytest.mark.parametrize("kind", ["all tied", "duplicates", "two levels"])
def test_pages_are_slices_of_one_stable_ranking(tmp_path: Path, kind: str) -> None:
    index = _tied_corpus(tmp_path, kind)
    for question in ("harbour lamp", "lamp -nothing", '"harbour lamp"'):
        everything = index.search(question, k=1000)
        ranking = [h.sentence_id for h in everything.hits]
        assert len(ranking) == everything.total and len(ranking) >= 30
        texts = [h.text for h in everything.hits]
        assert len(set(texts)) == len(texts)  # one per distinct text
        keys = [(-h.score, h.sentence_id) for h in everything.hits]
        assert keys == sorted(keys)  # a total order: score descending, then sentence id
        for size in (1, 2, 3, 7):
            paged: list[int] = []
            for offset in range(0, 42, size):
                page = index.search(question, k=size, offset=offset)
                paged += [h.sentence_id for h in page.hits]
            assert paged == ranking[: len(paged)], (question, size)
        tail = index.search(question, k=10, offset=len(ranking) - 4)
        assert [h.sentence_id for h in tail.hits] == ranking[-4:]


def test_one_chinese_character_finds_the_sentences_holding_it(index: SearchIndex) -> None:
    expected = ["我们要加强基础研究。"]
    assert [h.text for h in index.search("究").hits] == expected  # indexed only inside 研究
    assert [h.text for h in index.search('"究"').hits] == expected
    assert index.search("究").unknown_words == ()
    assert index.search("基础 -究").hits == ()  # excluded the same way


def test_unknown_chinese_words_are_named_as_typed_not_as_pairs(index: SearchIndex) -> None:
    assert index.search("基础研究量子").unknown_words == ("量子",)  # not "究量" and "量子"
    assert index.search("量子纠缠").unknown_words == ("量子纠缠",)  # not "量子", "子纠", "纠缠"
    assert index.search("coral xyzzy").unknown_words == ("xyzzy",)


def _pages(index: SearchIndex, question: str, k: int) -> list[int]:
    """Every page of ``question`` while the total promises one: none may come back empty or repeat."""
    seen: list[int] = []
    offset = 0
    while True:
        result = index.search(question, k=k, offset=offset)
        assert result.hits, (question, offset, result.total)  # a promised page is never empty
        seen += [h.sentence_id for h in result.hits]
        offset += k
        if offset >= result.total:
            break
        assert offset < 10_000
    assert len(seen) == len(set(seen))
    return seen


def test_a_phrase_over_repeated_sentences_fills_its_page_and_counts_texts(tmp_path: Path) -> None:
    for j in range(400):  # one text in 400 places, and 20 texts in 20 places each
        (tmp_path / f"f{j:03d}.txt").write_text(
            f" date 2020-05-05 Stall {j}\n\nA red apple fell. Apple {j} was red. "
            f"Stall {j % 20} had a red apple too.",
            encoding="utf-8",
        )
    index = SearchIndex.build(load_corpus(tmp_path).documents)
    result = index.search('"red apple"', 3)
    assert len(result.hits) == 3
    assert result.total == 21  # distinct texts, not "about 400"
    texts = [index.hit(i).text for i in _pages(index, '"red apple"', 3)]
    assert len(texts) == 21 and len(set(texts)) == 21


def test_phrase_matches_ranked_below_the_check_limit_are_found(tmp_path: Path) -> None:
    lines = [f"Red stall {i} apple." for i in range(3000)]  # both words, not side by side: ranked first
    lines += [f"Stall {i} sold one red apple to a customer from a distant village." for i in range(100)]
    (tmp_path / "market.txt").write_text(" date 2020-05-05 Market\n\n" + " ".join(lines), encoding="utf-8")
    index = SearchIndex.build(load_corpus(tmp_path).documents)
    result = index.search('"red apple"', 3)
    assert len(result.hits) == 3 and all("red apple" in h.text for h in result.hits)
    assert 50 <= result.total <= 150
    found = _pages(index, '"red apple"', 25)
    assert len(found) == 100 and all("red apple" in index.hit(i).text for i in found)


def test_a_phrase_of_common_words_never_promises_an_empty_page(tmp_path: Path) -> None:
    lines = [f"Stall {i} sold an apple that was red." for i in range(2500)]  # ranked first, no phrase
    lines += [f"Stall {i} sold a red apple to a customer from a village far away." for i in range(1500)]
    (tmp_path / "market.txt").write_text(" date 2020-05-05 Market\n\n" + " ".join(lines), encoding="utf-8")
    index = SearchIndex.build(load_corpus(tmp_path).documents)
    first = index.search('"red apple"', 500)
    assert len(first.hits) == 500 and 1000 <= first.total <= 2000
    for offset in (500, 1000, 1500, 2000, 2500):
        page = index.search('"red apple"', 500, offset=offset)
        assert bool(page.hits) == (offset < page.total), (offset, page.total)
        assert all("red apple" in h.text for h in page.hits)


def test_an_unknown_word_next_to_a_phrase_of_stop_words_does_not_kill_it(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text(" date 2020-05-05 X\n\nOne of the stalls sold apples. Nothing else.")
    index = SearchIndex.build(load_corpus(tmp_path).documents)
    alone = index.search('"of the"')
    with_unknown = index.search('"of the" xyzzy')
    assert [h.text for h in alone.hits] == ["One of the stalls sold apples."]
    assert [h.text for h in with_unknown.hits] == [h.text for h in alone.hits]
    assert with_unknown.unknown_words == ("xyzzy",)


def test_quotes_inside_a_phrase_keep_it_whole(index: SearchIndex) -> None:
    hits = index.search('"the ocean “absorbs heat” from"').hits
    assert [h.text for h in hits] == ["The ocean absorbs heat from the atmosphere."]
    assert [hits[0].text[a:b] for a, b in hits[0].spans] == ["The ocean absorbs heat from"]  # one phrase


def test_did_you_mean_shows_the_written_form_nearest_the_typo() -> None:
    sentences = ["The hall was decorated for the feast."] * 3 + ["A decorator wraps a function."]
    index = SearchIndex.build([Document("a.txt", "A", None, tuple(sentences))])
    assert index.suggest("decoratr") == ["decorator"]  # same stem as "decorated", which comes first
    assert index.search("decoratr").suggestions == {"decoratr": ("decorator",)}


def test_meaning_reads_the_question_with_its_slips_corrected(tmp_path: Path) -> None:
    from tests.test_semantic import ToyEncoder

    sentences = ["The research budget grew.", "A reserve of grain was kept.", "Research needs patience."]
    index = SearchIndex.build([Document("a.txt", "A", None, tuple(sentences))])
    seen: list[str] = []
    encoder = ToyEncoder()
    index.attach_vectors(index.vector_build(encoder, tmp_path))
    index._vector_build.run()  # type: ignore[union-attr]
    original = encoder.encode_query
    encoder.encode_query = lambda text: (seen.append(text), original(text))[1]  # type: ignore[method-assign]
    index.attach_vectors(index._vector_build)  # type: ignore[arg-type]
    index.search("reserch budget superstate")
    assert seen == ["research budget superstate"]  # the slip corrected, the real (unknown) word left as typed

"""Dates put to use: sort:new / sort:old, on:DATE, and a topic's matches counted per period."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import numpy as np
import pytest

from retrieval import NO_EXPANSION, IndexSettings, SearchIndex, load_corpus
from retrieval.query import parse_query
from retrieval.timeline import choose_granularity, count_per_period, period_filter, period_label

WORDS = ["harbour", "ship", "storm", "cargo", "crane", "lighthouse", "anchor", "tide", "fleet", "rope"]


def _corpus(folder: Path, seed: int = 5) -> Path:
    """60 dated documents over three years, 5 undated, sentences repeated across documents."""
    rng = random.Random(seed)
    start = dt.date(2020, 1, 1)
    shared = "The storm closed the harbour for a week."
    for n in range(65):
        sentences = [" ".join(["The", *rng.sample(WORDS, 3)]) + "." for _ in range(rng.randint(2, 6))]
        if n % 7 == 0:
            sentences.append(shared)  # the same sentence in several documents (and dates)
        if n < 60:
            date = start + dt.timedelta(days=rng.randint(0, 3 * 365))
            header = f"date {date.isoformat()} Report {n}\n\n"
        else:
            header = f"---\ntitle: Undated note {n}\nurl: https://example.org/notes/{n}\n---\n"
        (folder / f"doc{n:02d}.txt").write_text(header + " ".join(sentences) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def dated(tmp_path_factory: pytest.TempPathFactory) -> tuple[SearchIndex, list[tuple[str, dt.date | None]]]:
    folder = _corpus(tmp_path_factory.mktemp("dated"))
    documents = load_corpus(folder).documents
    index = SearchIndex.build(documents, IndexSettings(expansion=NO_EXPANSION))
    sentences = [(index.hit(i).text, index.hit(i).date) for i in range(index.stats.sentences)]
    return index, sentences


Sentences = list[tuple[str, dt.date | None]]


def _brute_force(sentences: Sentences, question: str) -> Sentences:
    """Every sentence holding each of the question's words (by stem), within its date filters."""
    analyzer = IndexSettings().analysis_config().analyzer()
    query = parse_query(question)
    wanted = set(analyzer.terms(query.text))
    low = query.after or (dt.date(query.year, 1, 1) if query.year else None)
    high = query.before or (dt.date(query.year, 12, 31) if query.year else None)
    excluded = {t for word in query.excluded for t in analyzer.terms(word)}
    found = []
    for text, date in sentences:
        terms = set(analyzer.terms(text))
        if not wanted <= terms or terms & excluded:
            continue
        if (low or high) and (date is None or (low and date < low) or (high and date > high)):
            continue
        found.append((text, date))
    return found


@pytest.mark.parametrize("question", [
    "harbour", "storm harbour", "ship -storm", "cargo after:2021-06-01", "tide before:2021",
    "crane year:2022",
    "fleet on:2021", "anchor on:2022-03", "storm harbour week",
])
def test_timeline_counts_equal_a_brute_force_count(dated, question):
    index, sentences = dated
    [series] = index.timeline([question]).series
    timeline = index.timeline([question])
    expected = _brute_force(sentences, question)
    assert series.total == len(expected)
    assert series.undated == sum(1 for _, d in expected if d is None)
    assert sum(series.counts) == series.total - series.undated
    dates = sorted(d for _, d in expected if d is not None)
    if dates:
        assert (series.first, series.last) == (dates[0], dates[-1])
        granularity = timeline.granularity
        for start, count in zip(timeline.periods, series.counts, strict=True):
            label = period_label(start, granularity)
            assert count == sum(1 for d in dates if period_label(d, granularity) == label)


def test_two_topics_share_one_axis(dated):
    index, _ = dated
    timeline = index.timeline(["harbour", "lighthouse"])
    harbour, lighthouse = timeline.series
    assert len(harbour.counts) == len(lighthouse.counts) == len(timeline.periods)
    assert timeline.granularity == "month"  # three years of documents
    assert timeline.periods == tuple(sorted(timeline.periods))


def test_a_repeated_sentence_counts_once_per_document(dated):
    index, sentences = dated
    shared = "storm closed harbour week"
    [series] = index.timeline([shared]).series
    assert series.total == sum(1 for t, _ in sentences if t == "The storm closed the harbour for a week.") > 1


def test_a_question_that_cannot_be_read_gives_an_error_not_an_exception(dated):
    index, _ = dated
    [series] = index.timeline(["harbour after:2021-13"]).series
    assert series.error and "not a valid date" in series.error and series.total == 0
    assert index.timeline(["the of"]).series[0].error


@pytest.mark.parametrize("order", ["new", "old"])
def test_sorted_by_date_pages_are_one_stable_list(dated, order):
    index, sentences = dated
    question = f"harbour sort:{order}"
    whole = index.search(question, 200)
    assert whole.order == order
    dates = [h.date for h in whole.hits]
    known = [d for d in dates if d is not None]
    assert known == sorted(known, reverse=order == "new")
    assert all(d is None for d in dates[len(known):])  # undated last, in either order
    texts = [h.text for h in whole.hits]
    assert len(texts) == len(set(texts)) == whole.total  # one per distinct text
    pages = [index.search(question, 3, offset).hits for offset in range(0, whole.total, 3)]
    paged = [h.sentence_id for page in pages for h in page]
    assert paged == [h.sentence_id for h in whole.hits]
    assert whole.total == len({t for t, _ in _brute_force(sentences, "harbour")})


def test_sorting_keeps_the_filters(dated):
    index, _ = dated
    hits = index.search("ship sort:old after:2021-01-01 -storm", 50).hits
    assert hits and all(h.date and h.date >= dt.date(2021, 1, 1) for h in hits)
    assert all("storm" not in h.text.lower() for h in hits)


def test_sources_are_carried_by_hits(dated):
    index, _ = dated
    undated = [h for h in index.search("harbour sort:new", 200).hits if h.date is None]
    assert undated and all(h.url and h.url.startswith("https://example.org/notes/") for h in undated)


@pytest.mark.parametrize(("first", "last", "expected"), [
    (dt.date(2023, 8, 5), dt.date(2023, 8, 5), "day"),
    (dt.date(2023, 1, 1), dt.date(2023, 4, 2), "day"),
    (dt.date(2023, 1, 1), dt.date(2023, 4, 3), "month"),
    (dt.date(2018, 1, 1), dt.date(2023, 12, 31), "month"),
    (dt.date(2017, 12, 31), dt.date(2023, 12, 31), "year"),
    (dt.date(1723, 1, 1), dt.date(2023, 1, 1), "year"),
])
def test_the_period_suits_the_span(first, last, expected):
    assert choose_granularity(first.toordinal(), last.toordinal()) == expected


def test_periods_run_from_first_to_last_with_the_gaps_as_zeros():
    days = np.array([dt.date(2023, 1, 15).toordinal(), dt.date(2023, 3, 2).toordinal(),
                     dt.date(2023, 3, 30).toordinal()])
    starts, counts = count_per_period(days, "month", int(days.min()), int(days.max()))
    assert starts == [dt.date(2023, 1, 1), dt.date(2023, 2, 1), dt.date(2023, 3, 1)]
    assert counts.tolist() == [1, 0, 2]
    assert period_filter(starts[0], "month") == "on:2023-01"
    assert period_filter(dt.date(2023, 8, 5), "day") == "on:2023-08-05"
    assert period_filter(dt.date(1999, 1, 1), "year") == "on:1999"

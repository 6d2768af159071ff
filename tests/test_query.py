"""The question's syntax: each rule, the friendly errors, and that nothing a user types breaks the parser."""

from __future__ import annotations

import contextlib
import datetime as dt
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.query import Query, QueryError, parse_query


def test_plain_words_and_whitespace() -> None:
    query = parse_query("  basic\tresearch \n funding  ")
    assert query == Query("basic research funding")
    assert not query.is_empty and not query.has_date_filter


def test_empty_questions() -> None:
    assert parse_query("").is_empty
    assert parse_query("   ").is_empty
    assert parse_query("?! — 🙂").is_empty  # nothing with a letter or digit
    assert parse_query("-military after:2023").is_empty  # exclusions and filters alone
    assert not parse_query('"cold war"').is_empty


@pytest.mark.parametrize(
    "question",
    ['"basic research"', "“basic research”", "„basic research“", "«basic research»", "”basic research”"],
)
def test_phrases_with_any_quotes(question: str) -> None:
    assert parse_query(f"funding {question} now") == Query("funding now", phrases=("basic research",))


def test_several_phrases_as_written() -> None:
    query = parse_query('"Basic   Research" and "the COLD war" 「基础研究」')
    assert query.phrases == ("Basic Research", "the COLD war", "基础研究")
    assert query.text == "and"


def test_empty_phrases_are_ignored() -> None:
    assert parse_query('"" " " word').phrases == ()


def test_unclosed_quote_is_ordinary_words() -> None:
    assert parse_query('a 27" monitor') == Query("a 27 monitor")
    query = parse_query('"basic research after:2023 -war')
    assert query == Query("basic research", excluded=("war",), after=dt.date(2023, 1, 1))
    # After an unclosed quote, later quote marks are dropped too.
    assert parse_query('«open "not a phrase"') == Query("open not a phrase")


def test_exclusions() -> None:
    query = parse_query('research -military -"cold war" -Army,')
    assert query.text == "research"
    assert query.excluded == ("military", "cold war", "Army,")


def test_hyphens_that_do_not_exclude() -> None:
    assert parse_query("well-known -5 degrees - dash --x").text == "well-known -5 degrees dash --x"
    assert parse_query("well-known -5 degrees").excluded == ()


def test_date_filters() -> None:
    query = parse_query("research after:2023-01-15 before:2023-06-30")
    assert query.after == dt.date(2023, 1, 15) and query.before == dt.date(2023, 6, 30)
    assert query.text == "research" and query.has_date_filter


def test_partial_dates_are_inclusive_ranges() -> None:
    assert parse_query("after:2023").after == dt.date(2023, 1, 1)
    assert parse_query("after:2023-08").after == dt.date(2023, 8, 1)
    assert parse_query("before:2023").before == dt.date(2023, 12, 31)
    assert parse_query("before:2023-08").before == dt.date(2023, 8, 31)
    assert parse_query("before:2024-02").before == dt.date(2024, 2, 29)


def test_filters_are_case_insensitive_with_other_separators() -> None:
    query = parse_query("AFTER:2023/5/1 Before:2023.12.01 YEAR:2023")
    assert (query.after, query.before, query.year) == (dt.date(2023, 5, 1), dt.date(2023, 12, 1), 2023)


def test_filter_value_after_a_space_and_punctuation() -> None:
    assert parse_query("war after: 2023-05-01").after == dt.date(2023, 5, 1)
    assert parse_query("(after:2023-08).").after == dt.date(2023, 8, 1)
    assert parse_query("year:2020, war").year == 2020
    assert parse_query("before: the war") == Query("before: the war")
    assert parse_query("after: 1990s music") == Query("after: 1990s music")


def test_year_filter() -> None:
    query = parse_query("elections year:2020")
    assert query.year == 2020 and query.after is None and query.before is None and query.has_date_filter


def test_several_filters_narrow() -> None:
    query = parse_query("after:2020 after:2021-06 before:2023 before:2022")
    assert (query.after, query.before) == (dt.date(2021, 6, 1), dt.date(2022, 12, 31))
    assert parse_query("year:2020 year:2020").year == 2020


def test_unknown_colon_words_are_words() -> None:
    query = parse_query("see http://x.org time: 3 note:this")
    assert query.text == "see http://x.org time: 3 note:this" and not query.has_date_filter


def test_filter_syntax_inside_a_phrase_is_text() -> None:
    assert parse_query('"after:2023 -war"') == Query("", phrases=("after:2023 -war",))


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("after:2023-02-30", "after:2023-02-30 is not a valid date (use after:YYYY-MM-DD)"),
        ("before:2023-13", "before:2023-13 is not a valid date"),
        ("after:lunch", "after:lunch is not a valid date"),
        ("after:0000", "after:0000 is not a valid date"),
        ("before:31.12.2023", "year first"),
        ("before: 31.12.2023", "before:31.12.2023 is not a valid date"),
        ("year:23", "year:23 is not a valid year (use year:YYYY"),
        ("year:2023-05", "year:2023-05 is not a valid year"),
        ("year:0000", "not a valid year"),
        ("year:2020 year:2021", "year:2020 and year:2021 cannot both hold"),
        ("after:2024 before:2023-06", "after:2024 is later than before:2023-06"),
        ("year:2020 after:2021", "after:2021 is after the end of year:2020"),
        ("year:2022 before:2021-12", "before:2021-12 is before the start of year:2022"),
    ],
)
def test_friendly_errors(question: str, message: str) -> None:
    with pytest.raises(QueryError) as error:
        parse_query(f"research {question}")
    assert message in str(error.value)


def test_error_quotes_a_long_value_shortly() -> None:
    with pytest.raises(QueryError) as error:
        parse_query("after:" + "x" * 3000)
    assert len(str(error.value)) < 120


def test_same_day_range_is_fine() -> None:
    query = parse_query("after:2023-05-01 before:2023-05-01")
    assert query.after == query.before == dt.date(2023, 5, 1)


@pytest.mark.parametrize(
    "question",
    ['"' * 4000, "«" * 4000, '"a ' * 1300, "-" * 4000, '-"' * 2000, "after: " * 570, "a " * 2000,
     "after:2023 " * 360, "x" * 4000, "\u3000" * 4000],
)
def test_long_questions_are_linear(question: str) -> None:
    start = time.perf_counter()
    with contextlib.suppress(QueryError):
        parse_query(question)
    assert time.perf_counter() - start < 0.5


_SYNTAX = st.sampled_from(
    ['"', "“", "”", "„", "«", "»", "「", "」", "-", "-\"", ":", "after:", "Before:", "year:", "2023", "-05",
     "-31", "/", ".", " ", "  ", "\n", "word", "x", "é", "基", "5", ")", "("]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.lists(_SYNTAX, max_size=30).map("".join)))
def test_any_string_gives_a_query_or_a_query_error(question: str) -> None:
    try:
        query = parse_query(question)
    except QueryError as error:
        assert str(error)
        return
    assert query.text == " ".join(query.text.split())
    assert all(p and p == " ".join(p.split()) for p in query.phrases)
    assert all(query.excluded)
    if query.after and query.before:
        assert query.after <= query.before
    assert query.is_empty == (not query.text and not query.phrases)


@pytest.mark.parametrize(
    "question",
    [
        '"he said “basic research” today"',
        '“he said "basic research" today”',
        "“he said «basic research» today”",
    ],
)
def test_quotes_of_another_kind_inside_a_phrase_stay_in_it(question: str) -> None:
    assert parse_query(f"x {question} y") == Query("x y", phrases=("he said basic research today",))
    assert parse_query(f"x -{question}").excluded == ("he said basic research today",)


@pytest.mark.parametrize(("question", "after", "before"), [
    ("x on:2023-08-05", dt.date(2023, 8, 5), dt.date(2023, 8, 5)),
    ("x on:2023-08", dt.date(2023, 8, 1), dt.date(2023, 8, 31)),
    ("x ON:2024-02", dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
    ("x on:2023 after:2023-06-01", dt.date(2023, 6, 1), dt.date(2023, 12, 31)),
])
def test_on_a_day_month_or_year(question, after, before):
    query = parse_query(question)
    assert (query.text, query.after, query.before) == ("x", after, before)


@pytest.mark.parametrize(("question", "order"), [
    ("x", "relevance"), ("x sort:new", "new"), ("sort:NEWEST x", "new"), ("x sort:old", "old"),
    ("x sort:oldest.", "old"), ("x sort:relevance", "relevance"),
])
def test_sort_orders(question, order):
    query = parse_query(question)
    assert (query.text, query.sort) == ("x", order)


@pytest.mark.parametrize(("question", "message"), [
    ("x sort:size", "sort:size is not an order I know (use sort:new or sort:old)"),
    ("x sort:new sort:old", "sort:new and sort:old cannot both hold"),
    ("x on:2023-02-30", "on:2023-02-30 is not a valid date (use on:YYYY-MM-DD, on:YYYY-MM or on:YYYY)"),
    ("x on:2023 before:2022", "on:2023 is later than before:2022, so no date can match"),
])
def test_bad_orders_and_days_are_explained(question, message):
    with pytest.raises(QueryError) as raised:
        parse_query(question)
    assert str(raised.value) == message

"""Reading corpus files and questions takes time linear in their length, whatever they contain.

Every regex that reads corpus or user text (``retrieval/corpus.py``, ``retrieval/analysis.py``,
``retrieval/query.py``) gets long adversarial inputs: runs of spaces, quote marks, colons, apostrophes,
combining marks. Rather than a wall-clock limit, each test times the same input at two sizes and asserts
that the time grew about as the size did: 16 times the input may cost at most 64 times the time (linear
costs about 16 times, quadratic 256 times, exponential far more).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from retrieval import corpus
from retrieval.analysis import _STRICT, _TOKEN, Analyzer
from retrieval.query import QueryError, parse_query

GROWTH = 16  # the larger input is this many times the smaller
SLACK = 4  # linear work grows GROWTH times, plus noise and cache effects: allow SLACK times that


def _seconds(work: Callable[[str], object], text: str) -> float:
    started = time.perf_counter()
    work(text)
    return time.perf_counter() - started


def assert_linear(
    work: Callable[[str], object], make: Callable[[int], str], n: int, growth: int = GROWTH, repeat: int = 5
) -> None:
    """``work(make(growth * n))`` costs about ``growth`` times ``work(make(n))``, not its square."""
    small, large = make(n), make(growth * n)
    work(small)  # warm up (memos, caches)
    small_best = large_best = float("inf")
    gc.disable()
    try:
        for _ in range(repeat):  # interleaved, so that a busy machine slows both alike; the best of each
            small_best = min(small_best, _seconds(work, small))
            large_best = min(large_best, _seconds(work, large))
    finally:
        gc.enable()
    ratio = large_best / max(small_best, 1e-6)
    assert ratio < SLACK * growth, f"{growth}x the input took {ratio:.0f}x the time"


# -- corpus files ----------------------------------------------------------------------------------------


def _read(tmp_path: Path, text: str) -> corpus.Document | None:
    path = tmp_path / "doc.txt"
    path.write_text(text, encoding="utf-8")
    doc, _ = corpus.read_document(path, "doc.txt")
    return doc


def test_simple_key_regex_is_linear_in_a_run_of_spaces() -> None:
    # The front-matter fallback: a lazy value before a trailing \s* retried it from every space (6 s per
    # 32 KB line).
    assert_linear(lambda line: corpus._SIMPLE_KEY.fullmatch(line), lambda n: "title: a" + " " * n + "b", 2000)
    match = corpus._SIMPLE_KEY.fullmatch("  Title :   'x  y'  ")
    assert match is not None and match.group(1) == "Title" and match.group(2).strip() == "'x  y'"


@pytest.mark.parametrize(
    "make",
    [
        lambda n: f'---\ntitle: "broken a{" " * n}b\ndate: 2021-03-04\n---\nBody text.\n',  # invalid YAML
        lambda n: f"---\ntitle: x{' ' * n}\n{'[' * 101}\ndate: 2021-03-04{' ' * n}x\n---\nBody.\n",
        lambda n: f"---\n{'title:' * n}\ndate: 2021{':' * n}\nurl: {chr(34) * n}\n'{' ' * n}\n---\nBody.\n",
    ],
    ids=["spaces-in-a-broken-title", "too-many-brackets", "colons-and-quotes"],
)
def test_front_matter_is_read_in_linear_time(tmp_path: Path, make: Callable[[int], str]) -> None:
    assert_linear(lambda text: _read(tmp_path, text), make, 2000)


def test_a_broken_front_matter_still_gives_its_title_and_date(tmp_path: Path) -> None:
    doc = _read(tmp_path, '---\ntitle: "broken a' + " " * 100_000 + 'b\ndate: 2021-03-04\n---\nBody text.\n')
    assert doc is not None and doc.date is not None and doc.date.year == 2021
    assert doc.title == "broken a b"


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "date" + " " * n + "x" + " " * n + "\nBody.\n",
        lambda n: "date:" + ":" * n + "\nBody.\n",
        lambda n: "date 2021-03-04" + " " * n + "T" * n + "\nBody.\n",
        lambda n: " " * n + "\n" * n + "Body" + " " * n + "text.\n",
        lambda n: "date 2021-03-04 Title\n" + "ÀÀ x " * n + "Za¿" * n + "\n",
    ],
    ids=["header-spaces", "header-colons", "header-date-and-runs", "blank-runs", "encoding-checks"],
)
def test_headers_and_bodies_are_read_in_linear_time(tmp_path: Path, make: Callable[[int], str]) -> None:
    assert_linear(lambda text: _read(tmp_path, text), make, 6000)


# -- analysis ----------------------------------------------------------------------------------------------


MARK = "\u0301"  # combining acute accent


def test_strict_token_regex_does_not_backtrack_over_combining_marks() -> None:
    # Parts with marks inside ("a" + marks + "b" + marks) that fail to complete a fullmatch were retried
    # every way of splitting their marks between the loop's iterations: 2^n (0.25 s at 11 marks, 20 s at 14).
    def fullmatch_often(word: str) -> None:
        for _ in range(200):
            _STRICT.fullmatch(word)

    # Small sizes, so that the exponential case fails here instead of never finishing.
    assert_linear(fullmatch_often, lambda n: "a" + MARK * n + "b" + MARK * n + "(", 1, growth=8)
    assert _STRICT.fullmatch("a" + MARK * 3 + "b" + MARK) is not None
    word = ("a" + MARK * 100_000) * 3
    assert _TOKEN.fullmatch(word) is not None and _STRICT.fullmatch(word + "(") is None


@pytest.mark.parametrize(
    ("make", "n"),
    [
        (lambda n: " " * n + "word" + " " * n, 6000),
        (lambda n: "a'" * n + "’" * n, 6000),
        (lambda n: "1," * n + "1." * n + ":" * n, 800),  # one raw token of many pieces: slow per piece
        (lambda n: "é" + MARK * n + "⑴ b" + MARK * n + "x⑴", 6000),  # NFKC makes "(1)": fullmatch fails
        (lambda n: '"“”„«»' * n, 6000),
        (lambda n: "基础研究" * n + "x'中国’s" * n, 250),  # a bigram per character: slow per character
    ],
    ids=["spaces", "apostrophes", "numbers-and-colons", "marks", "quote-marks", "cjk"],
)
def test_analysis_is_linear(make: Callable[[int], str], n: int) -> None:
    def analyse(text: str) -> None:
        analyzer = Analyzer()  # a fresh one: the memo must not hide the work
        analyzer.terms(text)
        analyzer.tokens(text)
        analyzer.words(text)

    assert_linear(analyse, make, n)


# -- questions (retrieval/query.py) ------------------------------------------------------------------------


def _parse(question: str) -> None:
    with contextlib.suppress(QueryError):
        parse_query(question)


@pytest.mark.parametrize(
    "make",
    [
        lambda n: " " * n + "x" + " " * n,
        lambda n: '"' * n,
        lambda n: "„" * n + "«" * n + "»" * n,
        lambda n: "“a " * n,
        lambda n: "-« " * n,
        lambda n: "after:" * n + " " * n + "1" * n + "x",
        lambda n: "after: " * n,
        lambda n: ":" * n + "year:" + "2" * n,
    ],
    ids=["spaces", "quotes", "guillemets", "open-quotes", "excluded-openers", "filters", "empty-filters",
         "colons"],
)
def test_questions_are_parsed_in_linear_time(make: Callable[[int], str]) -> None:
    assert_linear(_parse, make, 2500)

"""The sentence splitter: pySBD's English Golden Rules, real-text cases, and invariants for any input."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval import sentences
from retrieval.sentences import MAX_SENTENCE_CHARS, SPLITTER_VERSION, split_sentences

# A copy of the Golden Rules (MIT, see its header), kept in the repository: the tests need nothing outside it.
GOLDEN_RULES = Path(__file__).resolve().parent / "data" / "golden_rules_en.json"
KNOWN_FAILURES: frozenset[int] = frozenset()  # case ids this splitter gets wrong (none at present)
_CASES = json.loads(GOLDEN_RULES.read_text(encoding="utf-8"))["cases"]


def split(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text, max_chars)]


def check_invariants(text: str, max_chars: int) -> list[tuple[int, int]]:
    spans = split_sentences(text, max_chars)
    covered = 0
    for start, end in spans:
        assert covered <= start < end <= len(text)
        assert end - start <= max_chars
        piece = text[start:end]
        assert piece == piece.strip() and piece
        assert text[covered:start].isspace() or covered == start
        covered = end
    assert not text[covered:].strip()
    return spans


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=f"{c['id']:02d}-{c['name']}", marks=[pytest.mark.xfail(strict=True)])
        if c["id"] in KNOWN_FAILURES
        else pytest.param(c, id=f"{c['id']:02d}-{c['name']}")
        for c in _CASES
    ],
)
def test_golden_rules(case: dict) -> None:
    assert [s.strip() for s in split(case["text"])] == [s.strip() for s in case["expected"]]


def test_golden_rules_are_all_there() -> None:
    assert [c["id"] for c in _CASES] == list(range(1, 49))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Mr. Smith met Dr. Jones at 3 p.m. on Monday. They talked.",
            ["Mr. Smith met Dr. Jones at 3 p.m. on Monday.", "They talked."],
        ),
        (
            "The U.S. economy grew 3.5% in 2023. Prices rose.",
            ["The U.S. economy grew 3.5% in 2023.", "Prices rose."],
        ),
        ("See No. 5 for details.", ["See No. 5 for details."]),
        ("我们今天开会。明天继续！你来吗？好的", ["我们今天开会。", "明天继续！", "你来吗？", "好的"]),
        ("“你好。”他说。「はい！」", ["“你好。”", "他说。", "「はい！」"]),
        ("Is it?好的", ["Is it?", "好的"]),
        (
            "The talks ended\nat noon. A statement\nfollowed on Monday.\n",
            ["The talks ended\nat noon.", "A statement\nfollowed on Monday."],
        ),
        ("He said “Stop.” Then he left.", ["He said “Stop.”", "Then he left."]),
        ("‘Why?’ he asked. Nobody knew.", ["‘Why?’ he asked.", "Nobody knew."]),
        ("Studies agree.[12] Others differ.", ["Studies agree.[12]", "Others differ."]),
        (
            "Apple Inc. reported results. Alphabet Inc. will report next week.",
            ["Apple Inc. reported results.", "Alphabet Inc. will report next week."],
        ),
        (
            "Rev. Martin Luther King Jr. gave the speech in 1963. It changed history.",
            ["Rev. Martin Luther King Jr. gave the speech in 1963.", "It changed history."],
        ),
        (
            "The book was written by J. K. Rowling. It sold millions.",
            ["The book was written by J. K. Rowling.", "It sold millions."],
        ),
        (
            "Their flight leaves at 8 p.m. Saturday. They land at 6 a.m. Sunday.",
            ["Their flight leaves at 8 p.m. Saturday.", "They land at 6 a.m. Sunday."],
        ),
        (
            "Sales were up 3% vs. last year. Margins fell, however.",
            ["Sales were up 3% vs. last year.", "Margins fell, however."],
        ),
        (
            "He lives on Main St. The house is big. She lives in St. Louis.",
            ["He lives on Main St.", "The house is big.", "She lives in St. Louis."],
        ),
        ("The rate was 3.5%. 2024 will be better.", ["The rate was 3.5%.", "2024 will be better."]),
        ("Roe vs. Wade was decided in 1973. Yes.", ["Roe vs. Wade was decided in 1973.", "Yes."]),
        ("They sell pens, paper, etc. Great shop.", ["They sell pens, paper, etc.", "Great shop."]),
        ("It is fast (see below). * **Simple**: yes.", ["It is fast (see below).", "* **Simple**: yes."]),
        ("Items: a) red and b) blue are both fine.", ["Items: a) red and b) blue are both fine."]),
        ("Steps: 1) Open the box. 2) Take it out.", ["Steps: 1) Open the box.", "2) Take it out."]),
        ("• First item • Second item", ["• First item", "• Second item"]),
        ("यह एक वाक्य है। यह दूसरा है।", ["यह एक वाक्य है।", "यह दूसरा है।"]),
        ("Он сказал. Она ушла.", ["Он сказал.", "Она ушла."]),
    ],
)
def test_examples(text: str, expected: list[str]) -> None:
    assert split(text) == expected


def test_curly_quotes_from_real_text() -> None:
    first = (
        "General Secretary Xi Jinping’s article, “Strengthen Basic Research to Achieve High-Level "
        "Self-Reliance and Self-Improvement in Science and Technology,” published in the 15th issue of "
        "“Seeking Truth” magazine on August 1, sheds light on the significance of strengthening basic "
        "research."
    )
    second = (
        "In this article, the General Secretary emphasizes the strategic importance of basic research in six "
        "key areas."
    )
    assert split(f"{first} {second}") == [first, second]


def test_single_newlines_are_spaces() -> None:
    text = "Mr.\nSmith arrived\nlate. He\napologised.\r\nNobody minded."
    assert split(text) == ["Mr.\nSmith arrived\nlate.", "He\napologised.", "Nobody minded."]


def test_megabytes_without_punctuation_are_cut_at_word_boundaries_in_linear_time() -> None:
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do"]
    text = " ".join(words[(i * 7) % 10] for i in range(600_000))  # about 3.5 MB
    t0 = time.perf_counter()
    spans = check_invariants(text, MAX_SENTENCE_CHARS)
    assert time.perf_counter() - t0 < 3.0  # ~0.1 s here; a quadratic splitter takes minutes
    for (start, end), (next_start, next_end) in itertools.pairwise(spans):
        assert text[end] == " " and next_start == end + 1  # cut between words ...
        next_word = text[next_start:next_end].split(" ", 1)[0]
        assert end - start + 1 + len(next_word) > MAX_SENTENCE_CHARS  # ... and greedily


def test_overlong_word_is_cut_hard_and_clauses_are_preferred() -> None:
    assert split("x" * 25, max_chars=10) == ["x" * 10, "x" * 10, "x" * 5]
    text = "alpha beta gamma, delta epsilon zeta eta theta"
    assert split(text, max_chars=30) == ["alpha beta gamma,", "delta epsilon zeta eta theta"]


@pytest.mark.parametrize(
    "text",
    [
        "." * 200_000,
        ". " * 100_000 + ".x",
        "A. " * 70_000,
        "U.S. " * 40_000,
        "At 5 a.m. " * 20_000,
        "。)" * 100_000,
        "1. " * 70_000,
        " ".join(f"{i % 99 + 1}. Item" for i in range(25_000)),
        "• " * 100_000,
        "x.\t" * 70_000,
        "a. " + "!@#$%^&*" * 25_000,
        "Main St. " * 25_000,
        "and I. " * 30_000,
        " " * 200_000,
    ],
    ids=lambda t: repr(t[:12]),
)
def test_adversarial_inputs_stay_fast(text: str) -> None:
    t0 = time.perf_counter()
    check_invariants(text, MAX_SENTENCE_CHARS)
    assert time.perf_counter() - t0 < 2.0  # each takes well under 0.5 s here; quadratic would take minutes


def test_edge_cases() -> None:
    assert split_sentences("") == []
    assert split_sentences(" \n\t\u3000\xa0") == []
    assert split("\u200b") == ["\u200b"]
    assert split("Hi. 😀 there. Done!") == ["Hi. 😀 there.", "Done!"]
    with pytest.raises(ValueError):
        split_sentences("text", 0)


def test_public_api() -> None:
    assert sentences.__all__ == ["MAX_SENTENCE_CHARS", "SPLITTER_VERSION", "split_sentences"]
    assert isinstance(SPLITTER_VERSION, str) and SPLITTER_VERSION
    assert MAX_SENTENCE_CHARS == 600
    public = {name for name, v in vars(sentences).items() if name[0] != "_" and not isinstance(v, ModuleType)}
    assert public - {"annotations"} == set(sentences.__all__)


_PIECES = [
    "a", "A", "Mr", "U.S.", "e.g.", "I", "1", "12", "3.5", "co", " ", "  ", "\n", "\t", ".", "!", "?", "…",
    "...", " . . . ", "。", "！", "？", "“", "”", "‘", "’", '"', "'", "(", ")", "[", "]", "[1]", "•", "⁃",
    ":", ";", ",", "-", "$", "1.) ", "a) ", "The", "the", "我们", "\u200b", "\u200f", "\u202e", "😀", "\x00",
    "\x1c", "\x85", "\u2028", "\u3000", "\xa0", "\r\n", "é", "ß", "İ",
]


@settings(max_examples=400, deadline=None)
@given(text=st.text(), max_chars=st.integers(1, 700))
def test_invariants_on_any_text(text: str, max_chars: int) -> None:
    check_invariants(text, max_chars)


@settings(max_examples=600, deadline=None)
@given(pieces=st.lists(st.sampled_from(_PIECES), max_size=80), max_chars=st.integers(1, 60))
def test_invariants_on_punctuation_heavy_text(pieces: list[str], max_chars: int) -> None:
    check_invariants("".join(pieces), max_chars)


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(st.sampled_from(_PIECES), max_size=80))
def test_a_large_bound_changes_nothing_but_the_bound(pieces: list[str]) -> None:
    # Cutting over-long sentences must only ever subdivide the sentences found with no bound in effect.
    text = "".join(pieces)
    unbounded = split_sentences(text, 10**9)
    bounded = check_invariants(text, 7)
    ends = {end for _, end in bounded}
    starts = {start for start, _ in bounded}
    for start, end in unbounded:
        assert start in starts and end in ends

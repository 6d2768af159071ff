"""The quality benchmark's scoring (benchmarks/quality/metrics.py): gold matching, ranks, Recall@k, MRR,
AUROC, and the question-file loader. Exact expected values, no engine."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import random
import sys
from pathlib import Path

import pytest

from retrieval import SearchIndex

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from quality.metrics import (  # noqa: E402
    Question,
    QuestionFileError,
    auroc,
    first_gold_rank,
    load_questions,
    mrr_at,
    no_answer_auroc,
    normalise,
    recall_at,
    texts_match,
)

QUESTIONS = BENCHMARKS / "quality" / "questions"
LONG = "The harbour master wrote that the wall needed repair."


# -- matching -----------------------------------------------------------------------------------------------


def test_normalise_collapses_whitespace_and_folds_case() -> None:
    assert normalise("  The\tHarbour \n\n WALL  ") == "the harbour wall"
    assert normalise("STRASSE") == normalise("straße")  # casefold, not lower


def test_equal_texts_match_whatever_their_length() -> None:
    assert texts_match("Yes.", "yes.")
    assert texts_match("a  b", "A B")
    assert not texts_match("Yes.", "No.")


def test_containment_needs_25_characters_in_the_shorter() -> None:
    piece = "x" * 25
    assert texts_match(piece, f"before {piece} after")
    assert texts_match(f"before {piece} after", piece)  # either way round
    assert not texts_match(piece[:24], f"before {piece} after")
    # the 25 characters are counted after normalising: padding whitespace does not count
    assert not texts_match("   " + piece[:24] + "   ", f"before {piece} after")
    assert texts_match(LONG.upper(), "Then: " + LONG + " And more.")


def test_first_gold_rank_is_one_based_and_none_without_a_hit() -> None:
    ranked = ["Nothing here.", "Still nothing.", LONG, LONG]
    assert first_gold_rank(ranked, [LONG]) == 3
    assert first_gold_rank(ranked, ["Unrelated gold sentence of some length."]) is None
    assert first_gold_rank([], [LONG]) is None
    assert first_gold_rank(ranked, []) is None  # a no-answer question has no rank
    assert first_gold_rank(ranked, ["Other gold.", "still nothing."]) == 2  # any gold counts


def test_a_passage_counts_when_any_of_its_sentences_is_gold() -> None:
    ranked = [("One.", "Two."), ("Three.", LONG, "Four.")]
    assert first_gold_rank(ranked, [LONG]) == 2
    assert first_gold_rank(ranked, ["two."]) == 1


# -- Recall, MRR --------------------------------------------------------------------------------------------


def test_recall_and_mrr_exact_values() -> None:
    ranks = [1, 3, None, 11, 2]
    assert recall_at(ranks, 1) == pytest.approx(1 / 5)
    assert recall_at(ranks, 3) == pytest.approx(3 / 5)
    assert recall_at(ranks, 10) == pytest.approx(3 / 5)
    assert recall_at(ranks, 11) == pytest.approx(4 / 5)
    assert mrr_at(ranks, 10) == pytest.approx((1 + 1 / 3 + 1 / 2) / 5)
    assert mrr_at(ranks, 11) == pytest.approx((1 + 1 / 3 + 1 / 2 + 1 / 11) / 5)


def test_recall_and_mrr_of_no_question_are_nan() -> None:
    assert math.isnan(recall_at([], 1))
    assert math.isnan(mrr_at([]))


# -- AUROC --------------------------------------------------------------------------------------------------


def test_auroc_of_a_small_example() -> None:
    # pairs (pos, neg): 0.9>0.5 0.9>0.1 0.8>0.5 0.8>0.1 0.4<0.5 0.4>0.1: 5 of 6
    assert auroc([0.9, 0.8, 0.4], [0.5, 0.1]) == pytest.approx(5 / 6)


def test_auroc_counts_ties_half() -> None:
    # pairs: (1,1) tie, (1,0) win, (1,1) tie, (1,0) win: (0.5 + 1 + 0.5 + 1) / 4
    assert auroc([1.0, 1.0], [1.0, 0.0]) == pytest.approx(3 / 4)
    assert auroc([2.0, 2.0, 2.0], [2.0, 2.0]) == pytest.approx(0.5)
    assert auroc([0.0], [0.0]) == pytest.approx(0.5)


def test_auroc_extremes_and_empty_sides() -> None:
    assert auroc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert auroc([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert math.isnan(auroc([], [1.0]))
    assert math.isnan(auroc([1.0], []))
    with pytest.raises(ValueError, match="NaN"):
        auroc([math.nan], [1.0])


def test_auroc_equals_the_pairwise_count() -> None:
    rng = random.Random(7)
    for _ in range(50):
        positives = [float(rng.randint(0, 5)) for _ in range(rng.randint(1, 12))]
        negatives = [float(rng.randint(0, 5)) for _ in range(rng.randint(1, 12))]
        pairs = itertools.product(positives, negatives)
        wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs)
        assert auroc(positives, negatives) == pytest.approx(wins / (len(positives) * len(negatives)))


def test_no_answer_auroc_takes_answerable_questions_as_positives() -> None:
    def q(i: int, gold: tuple[str, ...]) -> Question:
        return Question(f"q{i}", "c", "?", gold, "keyword" if gold else "no-answer", "tune", None)

    questions = [q(1, ("A.",)), q(2, ()), q(3, ("B.",)), q(4, ())]
    assert no_answer_auroc(questions, [5.0, 1.0, 0.5, 0.5]) == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    with pytest.raises(ValueError):
        no_answer_auroc(questions, [1.0])


# -- question files -----------------------------------------------------------------------------------------

GOOD = {"id": "c-001", "corpus": "c", "question": "how do i revers a list", "gold": [LONG], "tag": "typo",
        "split": "tune", "date": "2022-10-24"}
NO_ANSWER = {"id": "c-002", "corpus": "c", "question": "who won", "gold": [], "tag": "no-answer",
             "split": "held", "date": None}


def write_lines(path: Path, *lines: object) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_loads_a_valid_file(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", GOOD, "", {**NO_ANSWER, "note": "extra fields are ignored"})
    first, second = load_questions(path, corpus="c")
    assert first == Question("c-001", "c", "how do i revers a list", (LONG,), "typo", "tune",
                             dt.date(2022, 10, 24))
    assert first.answerable
    assert not second.answerable and second.date is None and second.split == "held"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"c\.jsonl:2: not valid JSON"),
        ("[1, 2]", r"c\.jsonl:2: expected a JSON object"),
        ({**GOOD, "tag": "typos"}, r"c\.jsonl:2: unknown tag 'typos'"),
        ({**GOOD, "split": "test"}, r"c\.jsonl:2: unknown split 'test'"),
        ({k: v for k, v in GOOD.items() if k != "gold"}, r"c\.jsonl:2: missing field gold"),
        ({"id": "x"}, r"c\.jsonl:2: missing fields corpus, question, gold, tag, split, date"),
        ({**GOOD, "question": "  "}, r"c\.jsonl:2: question must be a non-empty string"),
        ({**GOOD, "gold": LONG}, r"c\.jsonl:2: gold must be a list"),
        ({**GOOD, "gold": []}, r"c\.jsonl:2: a 'typo' question has no gold sentence"),
        ({**NO_ANSWER, "gold": [LONG]}, r"c\.jsonl:2: a 'no-answer' question has gold sentences"),
        ({**GOOD, "date": "24.10.2022"}, r"c\.jsonl:2: date must be YYYY-MM-DD or null"),
        ({**GOOD, "date": 2022}, r"c\.jsonl:2: date must be YYYY-MM-DD or null"),
        ({**NO_ANSWER, "date": "2022-10-24"}, r"c\.jsonl:2: a no-answer question has no gold document"),
        ({**GOOD, "corpus": "other"}, r"c\.jsonl:2: corpus is 'other' but the file is for corpus 'c'"),
        (GOOD, r"c\.jsonl:2: id 'c-001' is already used on line 1"),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: object, message: str) -> None:
    path = write_lines(tmp_path / "c.jsonl", GOOD, line)
    with pytest.raises(QuestionFileError, match=message):
        load_questions(path, corpus="c")


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(QuestionFileError, match=r"absent\.jsonl: cannot read"):
        load_questions(tmp_path / "absent.jsonl")


@pytest.mark.parametrize("path", sorted(QUESTIONS.glob("*.jsonl")), ids=lambda p: p.name)
def test_every_question_file_follows_the_format(path: Path) -> None:
    questions = load_questions(path, corpus=path.stem)
    assert questions
    held = sum(q.split == "held" for q in questions) / len(questions)
    assert 0.25 <= held <= 0.55


def test_shipped_gold_sentences_are_sentences_of_the_shipped_corpus(shipped_index: SearchIndex) -> None:
    sentences = {shipped_index.hit(i).text for i in range(shipped_index.stats.sentences)}
    questions = load_questions(QUESTIONS / "shipped.jsonl", corpus="shipped")
    assert len(questions) >= 20
    assert sum(not q.answerable for q in questions) >= 3
    for question in questions:
        assert all(gold in sentences for gold in question.gold), question.id  # copied exactly

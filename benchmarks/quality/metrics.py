"""Scoring of the question set: gold matching, ranks, Recall@k, MRR@10, no-answer AUROC; the question files.

Pure functions, no engine in sight: a system's answer to a question is a ranked list of texts, judged against
the question's gold sentences as FORMAT.md says. Ranks are 1-based; ``None`` means no gold text in the list.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TAGS = frozenset({
    "keyword", "paraphrase", "synonym", "typo", "spelling", "inflection", "compound", "phrase",
    "stopword-phrase", "context", "no-answer",
})  # fmt: skip
SPLITS = ("tune", "held")
MIN_CONTAINED_CHARS = 25  # a normalised text this long or longer matches a text that contains it
NO_ANSWER = "no-answer"
_FIELDS = ("id", "corpus", "question", "gold", "tag", "split", "date")


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    corpus: str
    question: str
    gold: tuple[str, ...]  # empty: the corpus cannot answer it
    tag: str
    split: str
    date: dt.date | None

    @property
    def answerable(self) -> bool:
        return bool(self.gold)


class QuestionFileError(ValueError):
    """A question file that does not follow FORMAT.md; the message names the file and the line."""


# -- matching -----------------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Whitespace collapsed (and trimmed), case folded."""
    return " ".join(text.split()).casefold()


def texts_match(text: str, gold: str) -> bool:
    """Equal once normalised, or one contains the other and the shorter has at least 25 characters."""
    a, b = normalise(text), normalise(gold)
    if a == b:
        return True
    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    return len(shorter) >= MIN_CONTAINED_CHARS and shorter in longer


def matches_gold(text: str, gold: Iterable[str]) -> bool:
    return any(texts_match(text, g) for g in gold)


def first_gold_rank(ranked: Sequence[str | Sequence[str]], gold: Sequence[str]) -> int | None:
    """The 1-based rank of the first entry that matches a gold sentence, or None.

    An entry is a text, or several texts (a passage of sentences), which match when any of them does.
    """
    if not gold:
        return None
    for rank, entry in enumerate(ranked, 1):
        texts = (entry,) if isinstance(entry, str) else entry
        if any(matches_gold(text, gold) for text in texts):
            return rank
    return None


# -- metrics ------------------------------------------------------------------------------------------------


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    """The share of questions with a gold hit at rank k or better (NaN for no question)."""
    if not ranks:
        return math.nan
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def mrr_at(ranks: Sequence[int | None], k: int = 10) -> float:
    """Mean reciprocal rank, a gold hit below rank k counting 0 (NaN for no question)."""
    if not ranks:
        return math.nan
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks)


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """The probability that a positive scores above a negative, ties counted half (the Mann-Whitney U
    statistic over n_pos * n_neg). NaN when either side is empty."""
    n_pos, n_neg = len(positives), len(negatives)
    if not n_pos or not n_neg:
        return math.nan
    if any(math.isnan(s) for s in (*positives, *negatives)):
        raise ValueError("a score is NaN")
    # Average ranks over the pooled scores (ties share the mean of their ranks), then U from the positives'.
    pooled = sorted([(float(s), True) for s in positives] + [(float(s), False) for s in negatives])
    rank_sum = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        mean_rank = (i + j) / 2 + 1
        rank_sum += mean_rank * sum(1 for _, positive in pooled[i : j + 1] if positive)
        i = j + 1
    u = rank_sum - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def no_answer_auroc(questions: Sequence[Question], confidences: Sequence[float]) -> float:
    """AUROC of telling answerable questions (positive) from no-answer ones by a per-question confidence."""
    if len(questions) != len(confidences):
        raise ValueError("one confidence per question")
    positives = [c for q, c in zip(questions, confidences, strict=True) if q.answerable]
    negatives = [c for q, c in zip(questions, confidences, strict=True) if not q.answerable]
    return auroc(positives, negatives)


# -- question files -----------------------------------------------------------------------------------------


def load_questions(path: str | Path, corpus: str | None = None) -> list[Question]:
    """The questions of one ``questions/<corpus>.jsonl`` file, checked against FORMAT.md.

    ``corpus``, when given, is what every line's ``corpus`` field must say. Blank lines are skipped; fields
    beyond the format's are ignored. Raises QuestionFileError naming the file and line of the first problem.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise QuestionFileError(f"{path}: cannot read: {error}") from error
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except ValueError as error:
            raise QuestionFileError(f"{where}: not valid JSON ({error})") from error
        question = parse_question(record, where)
        if corpus is not None and question.corpus != corpus:
            raise QuestionFileError(
                f"{where}: corpus is {question.corpus!r} but the file is for corpus {corpus!r}"
            )
        if question.id in seen:
            first = seen[question.id]
            raise QuestionFileError(f"{where}: id {question.id!r} is already used on line {first}")
        seen[question.id] = number
        questions.append(question)
    return questions


def parse_question(record: Any, where: str = "question") -> Question:
    """One question from its JSON object; ``where`` prefixes the error messages."""
    if not isinstance(record, dict):
        raise QuestionFileError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [name for name in _FIELDS if name not in record]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise QuestionFileError(f"{where}: missing field{plural} {', '.join(missing)}")

    def text(name: str) -> str:
        value = record[name]
        if not isinstance(value, str) or not value.strip():
            raise QuestionFileError(f"{where}: {name} must be a non-empty string, got {value!r}")
        return value

    qid, corpus, question, tag, split = (text(n) for n in ("id", "corpus", "question", "tag", "split"))
    if tag not in TAGS:
        raise QuestionFileError(f"{where}: unknown tag {tag!r} (tags: {', '.join(sorted(TAGS))})")
    if split not in SPLITS:
        raise QuestionFileError(f"{where}: unknown split {split!r} (splits: {', '.join(SPLITS)})")
    gold = record["gold"]
    if not isinstance(gold, list) or not all(isinstance(g, str) and g.strip() for g in gold):
        raise QuestionFileError(f"{where}: gold must be a list of non-empty strings")
    if (tag == NO_ANSWER) != (not gold):
        problem = "has gold sentences" if gold else "has no gold sentence"
        raise QuestionFileError(
            f"{where}: a {tag!r} question {problem} (gold is [] exactly for tag {NO_ANSWER!r})"
        )
    date = record["date"]
    if date is None:
        day = None
    elif isinstance(date, str):
        try:
            day = dt.date.fromisoformat(date) if len(date) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise QuestionFileError(f"{where}: date must be YYYY-MM-DD or null, got {date!r}")
    else:
        raise QuestionFileError(f"{where}: date must be YYYY-MM-DD or null, got {date!r}")
    if day is not None and not gold:
        raise QuestionFileError(f"{where}: a no-answer question has no gold document, so its date is null")
    return Question(qid, corpus, question, tuple(gold), tag, split, day)

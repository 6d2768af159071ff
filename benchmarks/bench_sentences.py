"""Quality and speed of retrieval.sentences against pySBD and a naive regex splitter.

Run: python benchmarks/bench_sentences.py [--quick]

Prints (a) the English Golden Rules score (48 cases, tests/data/golden_rules_en.json) of each splitter and
(b) sentences per second on one core over English news-style paragraphs, built deterministically from a pool
of sentences written below; "exact" is the share of paragraphs split exactly into the pool's sentences.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval.sentences import split_sentences  # noqa: E402

GOLDEN_RULES = ROOT / "tests" / "data" / "golden_rules_en.json"

# Each entry is exactly one sentence; paragraphs are 3-8 of them joined by a space (sometimes a newline).
POOL = [
    "The central bank raised its benchmark rate by a quarter point on Wednesday.",
    "Mr. Smith told reporters that the plan would be ready by the end of the month.",
    "Officials said the U.S. economy grew 3.5% in the third quarter, beating forecasts.",
    "The company reported revenue of $1.2 billion, up from $980 million a year earlier.",
    "Dr. Jones, who leads the research team, said the results were “very encouraging.”",
    "Shares fell 4.2 percent in early trading before recovering in the afternoon.",
    "The meeting began at 9 a.m. and lasted more than three hours.",
    "Critics argue that the proposal does not go far enough.",
    "According to the report (published on Monday), unemployment fell to 3.9 percent.",
    "“We are not going to back down,” the senator said in a statement.",
    "The bridge, which opened in 1937, carries about 112,000 vehicles a day.",
    "Prices for wheat and corn have risen sharply since the start of the year.",
    "Is this the end of cheap money?",
    "Nobody expected the vote to be this close!",
    "The new rules take effect on Jan. 1 and apply to all firms with more than 50 employees.",
    "See No. 5 in the appendix for the full list of exemptions.",
    "Ms. Garcia, a former teacher, was elected mayor in 2019.",
    "The storm knocked out power to roughly 250,000 homes in three states.",
    "Analysts at the bank expect growth of 2.1% next year.",
    "The museum will reopen after a two-year renovation that cost about $45 million.",
    "Gov. Newsom signed the bill into law late on Friday.",
    "He said the talks had been “constructive but difficult.”",
    "The train left the station at 6:45 p.m. on Sunday, two hours late.",
    "Local farmers say the drought is the worst they have seen in decades.",
    "The agency said it would review the decision (a rare step) within 30 days.",
    "Prof. Lee's study, which followed 1,200 patients, found no link between the two.",
    "The team won its first title since 1998.",
    "Why would anyone build a stadium there?",
    "The U.N. Security Council is expected to vote on the resolution next week.",
    "The factory employs 3,400 people and exports most of what it makes.",
    "Inflation slowed to 2.8 percent in March, the lowest level in two years.",
    "She joined Acme Corp. as an engineer and became chief executive in 2015.",
    "The court ruled 6-3 in favour of the plaintiffs.",
    "Tickets cost between $25 and $120, depending on the seat.",
    "Residents were told to boil their water until further notice.",
    "The minister declined to comment on the report.",
    "Sales of electric cars rose 40% last year, according to industry data.",
    "The fire started in a warehouse on Main Street shortly after midnight.",
    "“It's a historic day for our city,” said Mayor Ana Torres.",
    "The researchers used data from more than 80 countries.",
    "Dr. A. K. Patel will present the findings at a conference in Geneva.",
    "Exports to the E.U. fell for the second month in a row.",
    "The deal, valued at $3.4 billion, still needs approval from regulators.",
    "Volunteers handed out food and blankets to families who had lost their homes.",
    "The law was passed in 2010 but was never fully enforced.",
    "Some economists warn that a recession is likely within 18 months.",
    "The company's chief financial officer, John Miller, will step down in June.",
    "He first visited the region as a student in the 1980s.",
    "The airline cancelled 1,100 flights because of the strike.",
    "Schools in the district will close at noon on Thursday.",
    "Temperatures are expected to reach 38 degrees in parts of the south.",
    "The suspect was arrested at his home in the early hours of Saturday.",
    "The new stadium will seat 60,000 fans (about 15,000 more than the old one).",
    "The results will be published in the journal Nature next month.",
    "Investors are watching the Fed closely for signs of a pause.",
]

Splitter = Callable[[str], list[str]]
_NAIVE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")  # split after . ! ? before a capital


def ours(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


def naive(text: str) -> list[str]:
    return [part for part in _NAIVE.split(text) if part.strip()]


def make_pysbd() -> Splitter | None:
    try:
        import pysbd
    except ImportError:
        return None
    segmenter = pysbd.Segmenter(language="en", clean=False, char_span=False)
    return lambda text: [s for s in segmenter.segment(text) if s.strip()]


def golden_score(split: Splitter, cases: list[dict]) -> tuple[int, list[int]]:
    failed = []
    for case in cases:
        got = [s.strip() for s in split(case["text"]) if s.strip()]
        if got != [s.strip() for s in case["expected"]]:
            failed.append(case["id"])
    return len(cases) - len(failed), failed


def paragraphs(n_sentences: int, seed: int = 20240501) -> list[list[str]]:
    rng = random.Random(seed)
    out: list[list[str]] = []
    total = 0
    while total < n_sentences:
        k = min(rng.randint(3, 8), n_sentences - total)
        out.append([rng.choice(POOL) for _ in range(k)])
        total += k
    return out


def join(sentences: list[str], rng: random.Random) -> str:
    return "".join(s + ("\n" if rng.random() < 0.05 else " ") for s in sentences).rstrip()


def throughput(
    split: Splitter, texts: list[str], expected: list[list[str]], repeats: int
) -> tuple[float, float]:
    """Best-of-`repeats` sentences per second, and the share of paragraphs split exactly as built."""
    n = sum(len(e) for e in expected)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for text in texts:
            split(text)
        best = min(best, time.perf_counter() - t0)
    exact = sum([s.strip() for s in split(t)] == e for t, e in zip(texts, expected, strict=True))
    return n / best, exact / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 20k sentences)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    cases = json.loads(GOLDEN_RULES.read_text(encoding="utf-8"))["cases"]
    pysbd_split = make_pysbd()
    splitters: dict[str, Splitter | None] = {
        "retrieval.sentences": ours,
        "pysbd": pysbd_split,
        "naive regex": naive,
    }

    n_ours = 20_000 if args.quick else 200_000
    n_pysbd = 1_000 if args.quick else 5_000
    rng = random.Random(7)
    built = paragraphs(n_ours)
    texts = [join(p, rng) for p in built]
    small = max(1, len(texts) * n_pysbd // n_ours)
    repeats = 2 if args.quick else 3

    print(f"prose: {len(texts):,} paragraphs, {n_ours:,} sentences, {sum(map(len, texts)) / 1e6:.1f}M chars")
    print(f"{'splitter':<22}{'golden rules':>14}{'sentences/s':>14}{'exact':>9}  failed golden cases")
    for name, split in splitters.items():
        if split is None:
            print(f"{name:<22}{'(not installed)':>14}")
            continue
        score, failed = golden_score(split, cases)
        sample = slice(None) if name != "pysbd" else slice(0, small)
        rate, exact = throughput(split, texts[sample], built[sample], 1 if name == "pysbd" else repeats)
        print(f"{name:<22}{f'{score}/{len(cases)}':>14}{rate:>14,.0f}{exact:>9.1%}  {failed}")


if __name__ == "__main__":
    main()

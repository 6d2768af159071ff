"""Micro benchmark of ``Analyzer.terms``, the hot path of an index build: sentences per second on one core.

    python benchmarks/bench_analysis.py [--sentences 200000] [--words 20] [--repeat 3]

Sentences are synthetic but shaped like news prose: Zipf-distributed words from a vocabulary of ~20,000
(stop words among the most frequent), some capitalised, with numbers and punctuation. "cold" starts with an
empty memo, "warm" runs the same sentences again (what a long build mostly sees); the figure to quote is the
median warm run (the timings of a shared machine vary by tens of percent from run to run).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retrieval.analysis import ENGLISH_STOP_WORDS, Analyzer

_SUFFIXES = ("", "", "", "s", "ing", "ed", "er", "ers", "ation", "ly", "ness", "al", "ity")


def make_vocabulary(size: int, rng: random.Random) -> list[str]:
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [26 - i for i in range(26)]
    stems = {"".join(rng.choices(letters, weights, k=rng.randint(3, 9))) for _ in range(size)}
    vocabulary = sorted(ENGLISH_STOP_WORDS - {w for w in ENGLISH_STOP_WORDS if "'" in w})
    vocabulary += [stem + rng.choice(_SUFFIXES) for stem in sorted(stems)]
    return vocabulary


def make_sentences(n: int, words: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    vocabulary = make_vocabulary(20_000, rng)
    cumulative = []
    total = 0.0
    for rank in range(1, len(vocabulary) + 1):
        total += 1.0 / rank
        cumulative.append(total)
    sentences = []
    for _ in range(n):
        chosen = rng.choices(vocabulary, cum_weights=cumulative, k=words)
        chosen[0] = chosen[0].capitalize()
        for i in range(1, words):
            roll = rng.random()
            if roll < 0.06:
                chosen[i] = chosen[i].capitalize()
            elif roll < 0.09:
                chosen[i] = str(rng.choice((rng.randint(1, 100), rng.randint(1900, 2030), "3.5", "1,000")))
            elif roll < 0.15:
                chosen[i] += ","
            elif roll < 0.16:
                chosen[i] += "’s"
        sentences.append(" ".join(chosen) + rng.choice((".", ".", ".", "?", "!")))
    return sentences


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=200_000)
    parser.add_argument("--words", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs after the cold one")
    args = parser.parse_args()
    sentences = make_sentences(args.sentences, args.words)
    chars = sum(len(s) for s in sentences)
    print(f"{len(sentences):,} sentences, {args.words} words, {chars / len(sentences):.0f} chars each")
    analyzer = Analyzer()
    rates = []
    for run in range(1 + args.repeat):
        start = time.perf_counter()
        terms = 0
        for sentence in sentences:
            terms += len(analyzer.terms(sentence))
        seconds = time.perf_counter() - start
        rates.append(len(sentences) / seconds)
        label = "cold (empty memo)" if run == 0 else f"warm run {run}"
        rate = f"{rates[-1]:,.0f} sentences/s, {terms / seconds:,.0f} terms/s"
        print(f"terms() {label}: {rate} ({seconds:.2f} s)")
    if args.repeat:
        print(f"terms() warm median: {statistics.median(rates[1:]):,.0f} sentences/s")
    start = time.perf_counter()
    sample = sentences[:20_000]
    for sentence in sample:
        analyzer.tokens(sentence)
    print(f"tokens(): {len(sample) / (time.perf_counter() - start):,.0f} sentences/s")


if __name__ == "__main__":
    main()

"""Which characters of a quote to emphasise: the words that made it match.

Highlighting re-analyses only the few sentences shown, with the same analyzer as the index, so a stemmed match
("researching" for "research") is highlighted exactly where the index saw it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from retrieval.analysis import Analyzer

Span = tuple[int, int]


def phrase_positions(words: Sequence[str], phrase: Sequence[str]) -> list[int]:
    """Start indexes of every occurrence of ``phrase`` as a contiguous run in ``words``."""
    n = len(phrase)
    if n == 0 or n > len(words):
        return []
    first = phrase[0]
    return [
        i for i in range(len(words) - n + 1) if words[i] == first and list(words[i : i + n]) == list(phrase)
    ]


def highlight_spans(
    text: str, analyzer: Analyzer, terms: Collection[str], phrases: Sequence[Sequence[str]] = ()
) -> tuple[Span, ...]:
    """Character spans of the matched terms and phrases in ``text``, sorted and merged."""
    spans: list[Span] = [(t.start, t.end) for t in analyzer.matching_tokens(text, terms)]
    if phrases:
        words = analyzer.words(text)
        surface = [w.term for w in words]
        for phrase in phrases:
            for i in phrase_positions(surface, phrase):
                spans.append((words[i].start, words[i + len(phrase) - 1].end))
    return merge_spans(spans)


def merge_spans(spans: list[Span]) -> tuple[Span, ...]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)

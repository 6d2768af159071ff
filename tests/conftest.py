"""Shared fixtures: a small corpus with known sentences and dates, and search indexes built from it and from
the shipped corpus (built once per session: a SearchIndex is immutable and thread-safe)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval import IndexSettings, SearchIndex, load_corpus

REPO = Path(__file__).resolve().parent.parent
SHIPPED_CORPUS = REPO / "corpus"

LONG_WORDS = " ".join(f"word{i % 97}" for i in range(900))
SMALL_CORPUS = {
    "lighthouse.txt": """date 2021-03-04 The Lighthouse Keeper's Log

The lighthouse keeper counted seventeen ships in the harbour that night. Storms had kept the fishing fleet \
at anchor for a week. Every harbour light was checked twice before midnight.

The harbour master wrote that the harbour wall needed repair. A new harbour crane arrived in spring. \
Children watched the harbour from the hill. The old harbour smelled of tar and rope. \
Gulls followed every boat into the harbour.
""",
    "orchard.txt": """date 2019-10-12 Notes from the Apple Orchard

The orchard produced a record harvest of apples in October. Pickers came from three villages to help. \
The cider press ran day and night.
""",
    "memo.txt": """---
title: Undated Memo <on cables> & wires
---
The memo describes a submarine cable laid between two islands. Nobody recorded when the cable failed.
""",
    "long.txt": f"""date 2022-01-01 A Very Long Sentence

This sentence goes on {LONG_WORDS} until the zeppelin appears {LONG_WORDS} and only then does it end.
""",
}


@pytest.fixture(scope="session")
def small_corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for name, text in SMALL_CORPUS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def small_index(small_corpus_dir: Path) -> SearchIndex:
    """The small corpus; long sentences are kept whole so replies must cut them to fit Telegram."""
    corpus = load_corpus(small_corpus_dir)
    assert not [p for p in corpus.problems if p.skipped], corpus.problems
    return SearchIndex.build(corpus.documents, IndexSettings(max_sentence_chars=100_000))


@pytest.fixture(scope="session")
def shipped_index() -> SearchIndex:
    return SearchIndex.build(load_corpus(SHIPPED_CORPUS).documents)

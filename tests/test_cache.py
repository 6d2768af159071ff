"""The on-disk index cache: reused when nothing changed, rebuilt when something did, never half-loaded."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from retrieval import CorpusError, IndexSettings, open_index
from retrieval.cache import cache_key
from tests.test_search import FILES, write_corpus


def hits(opened, question: str = "coral reefs") -> list[str]:  # type: ignore[no-untyped-def]
    return [h.text for h in opened.index.search(question).hits]


def test_second_open_loads_the_cache_and_answers_the_same(tmp_path: Path) -> None:
    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    first = open_index(corpus, IndexSettings(), cache)
    second = open_index(corpus, IndexSettings(), cache)
    assert not first.from_cache and second.from_cache
    assert hits(first) == hits(second) and hits(second)
    assert second.index.fingerprint == first.index.fingerprint
    assert second.index.stats == first.index.stats
    assert [c.text for c in second.index.context(hits_id(second))] == [
        c.text for c in first.index.context(hits_id(first))
    ]


def hits_id(opened) -> int:  # type: ignore[no-untyped-def]
    return opened.index.search("coral reefs").hits[0].sentence_id


def test_cache_holds_only_plain_arrays_and_json(tmp_path: Path) -> None:
    opened = open_index(write_corpus(tmp_path / "corpus"), IndexSettings(), tmp_path / "cache")
    assert opened.cache_path is not None
    suffixes = {p.suffix for p in opened.cache_path.iterdir()}
    assert suffixes == {".npy", ".json"}


def test_changed_file_triggers_a_rebuild(tmp_path: Path) -> None:
    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    open_index(corpus, IndexSettings(), cache)
    path = corpus / "ocean.txt"
    path.write_text(FILES["ocean.txt"].replace("Coral reefs", "Kelp forests"), encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    reopened = open_index(corpus, IndexSettings(), cache)
    assert not reopened.from_cache
    assert reopened.index.search("kelp").hits
    assert len([p for p in cache.iterdir() if p.name.startswith("index-")]) == 1  # the stale entry is gone


def test_added_file_and_changed_setting_trigger_a_rebuild(tmp_path: Path) -> None:
    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    key = cache_key(corpus, IndexSettings())[0]
    (corpus / "new.txt").write_text(" date 2024-01-01 New\n\nZebras roam the plains.", encoding="utf-8")
    assert cache_key(corpus, IndexSettings())[0] != key
    assert cache_key(corpus, IndexSettings(stemming=False))[0] != cache_key(corpus, IndexSettings())[0]
    open_index(corpus, IndexSettings(), cache)
    unstemmed = open_index(corpus, IndexSettings(stemming=False), cache)
    assert not unstemmed.from_cache
    assert unstemmed.index.search("researching").hits[0].spans  # exact word only, without stemming


def test_ranking_settings_apply_without_a_rebuild(tmp_path: Path) -> None:
    from retrieval import BM25Params

    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    okapi = open_index(corpus, IndexSettings(), cache)
    plus = open_index(corpus, IndexSettings(ranking=BM25Params(algorithm="bm25plus")), cache)
    assert plus.from_cache
    assert plus.index.search("coral").hits[0].score != okapi.index.search("coral").hits[0].score
    assert plus.cache_path is not None
    assert len(list(plus.cache_path.glob("weights-*.npy"))) == 2  # each setting's weights kept once computed
    again = open_index(corpus, IndexSettings(ranking=BM25Params(algorithm="bm25plus")), cache)
    assert again.index.search("coral").hits[0].score == plus.index.search("coral").hits[0].score


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    first = open_index(corpus, IndexSettings(), cache)
    assert first.cache_path is not None
    blob = first.cache_path / "sentence_ids.npy"
    blob.write_bytes(blob.read_bytes()[:40])
    with caplog.at_level(logging.WARNING):
        again = open_index(corpus, IndexSettings(), cache)
    assert not again.from_cache and "unreadable" in caplog.text
    assert hits(again) == hits(first)


def test_half_written_entry_is_never_loaded(tmp_path: Path) -> None:
    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    key = cache_key(corpus, IndexSettings())[0]
    leftover = cache / f".tmp-index-{key}-999-1"
    leftover.mkdir(parents=True)
    (leftover / "meta.json").write_text("{", encoding="utf-8")
    opened = open_index(corpus, IndexSettings(), cache)
    assert not opened.from_cache and hits(opened)
    assert open_index(corpus, IndexSettings(), cache).from_cache


def test_problems_survive_the_cache(tmp_path: Path) -> None:
    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    (corpus / "empty.txt").write_text("", encoding="utf-8")
    first = open_index(corpus, IndexSettings(), cache)
    second = open_index(corpus, IndexSettings(), cache)
    assert second.from_cache
    assert [p.file for p in second.problems] == [p.file for p in first.problems]
    assert "empty.txt" in {p.file for p in second.problems}
    assert second.skipped == first.skipped == 1
    assert "1 file skipped" in second.summary()


def test_missing_and_empty_corpus_folders_are_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        open_index(tmp_path / "nowhere", IndexSettings(), tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no usable documents"):
        open_index(tmp_path / "empty", IndexSettings(), tmp_path / "cache")

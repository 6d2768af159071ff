"""The on-disk index cache: reused when nothing changed, rebuilt when something did, never half-loaded."""

from __future__ import annotations

import json
import logging
import os
import shutil
import zlib
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


# -- damaged entries: one warning line, rebuilt, and repaired for good ---------------------------------------


def _set_meta(entry: Path, change, *, sign: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Rewrite meta.json, signed with a fitting checksum (as a buggy writer would) to reach later checks."""
    from retrieval.cache import _with_checksum

    meta = change(json.loads((entry / "meta.json").read_text(encoding="utf-8")))
    body = json.dumps({k: v for k, v in meta.items() if k != "checksum"}).encode() if sign else b""
    (entry / "meta.json").write_bytes(_with_checksum(body) if sign else json.dumps(meta).encode())


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGES = {
    "tf.npy emptied": lambda e: (e / "tf.npy").write_bytes(b""),
    "blob.npy emptied": lambda e: (e / "blob.npy").write_bytes(b""),
    "indptr.npy emptied": lambda e: (e / "indptr.npy").write_bytes(b""),
    "vocabulary.npy cut short": lambda e: (e / "vocabulary.npy").write_bytes(
        (e / "vocabulary.npy").read_bytes()[:-3]
    ),
    "offsets.npy missing": lambda e: (e / "offsets.npy").unlink(),
    "npy header garbled": lambda e: (e / "lengths.npy").write_bytes(
        b"\x93NUMPY\x01\x00{garbage" + (e / "lengths.npy").read_bytes()[17:]
    ),
    "meta.json a list": lambda e: (e / "meta.json").write_text("[1, 2]", encoding="utf-8"),
    "meta.json a string": lambda e: (e / "meta.json").write_text('"index"', encoding="utf-8"),
    "meta.json null": lambda e: (e / "meta.json").write_text("null", encoding="utf-8"),
    "meta.json empty": lambda e: (e / "meta.json").write_bytes(b""),
    "meta.json not UTF-8": lambda e: (e / "meta.json").write_bytes(b"\xff\xfe{}"),
    "meta.json missing": lambda e: (e / "meta.json").unlink(),
    "meta.json nested deeply": lambda e: (e / "meta.json").write_text("[" * 100_000, encoding="utf-8"),
    "shapes null": lambda e: _set_meta(e, lambda m: {**m, "shapes": None}),
    "problems a string": lambda e: _set_meta(e, lambda m: {**m, "problems": "none"}),
    "documents of strings": lambda e: _set_meta(e, lambda m: {**m, "documents": ["a"]}),
    "n_documents a string": lambda e: _set_meta(e, lambda m: {**m, "n_documents": "3"}),
    "no checksums": lambda e: _set_meta(e, lambda m: {k: v for k, v in m.items() if k != "files"}),
    "a file's checksum a string": lambda e: _set_meta(
        e, lambda m: {**m, "files": {**m["files"], "tf": {"bytes": 1, "crc32": "x"}}}
    ),
    "shapes null, unsigned": lambda e: _set_meta(e, lambda m: {**m, "shapes": None}, sign=False),
    "written before checksums": lambda e: _set_meta(
        e, lambda m: {k: v for k, v in m.items() if k not in ("checksum", "files")}, sign=False
    ),
    "an older format": lambda e: _set_meta(e, lambda m: {**m, "format": "corpus-bot-index-0"}),
    "other settings": lambda e: _set_meta(e, lambda m: {**m, "fingerprint": "other"}),
    "entry is a file": lambda e: (shutil.rmtree(e), e.write_text("x")),
    # same size, other bytes: only a checksum can tell
    "byte flipped in sentence_doc.npy": lambda e: _flip_last_byte(e / "sentence_doc.npy"),
    "byte flipped in offsets.npy": lambda e: _flip_last_byte(e / "offsets.npy"),
    "byte flipped in meta.json": lambda e: (e / "meta.json").write_bytes(
        (e / "meta.json").read_bytes().replace(b"Ocean Report", b"Ocean Repost")
    ),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_entry_is_reported_in_one_line_rebuilt_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    first = open_index(corpus, IndexSettings(), cache)
    assert first.cache_path is not None
    DAMAGES[damage](first.cache_path)
    with caplog.at_level(logging.WARNING):
        again = open_index(corpus, IndexSettings(), cache)
    assert not again.from_cache and hits(again) == hits(first)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "unreadable" in warnings[0].getMessage() and "\n" not in warnings[0].getMessage()
    assert warnings[0].exc_info is None
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        third = open_index(corpus, IndexSettings(), cache)
    assert third.from_cache and not caplog.records  # repaired: no rebuild at every start
    assert hits(third) == hits(first)
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]  # the damaged one is gone too


def test_rebuild_replaces_a_damaged_entry(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    first = open_index(corpus, IndexSettings(), cache)
    assert first.cache_path is not None
    (first.cache_path / "tf.npy").write_bytes(b"")
    rebuilt = open_index(corpus, IndexSettings(), cache, rebuild=True)  # `corpus-bot index --rebuild`
    assert not rebuilt.from_cache
    with caplog.at_level(logging.WARNING):
        after = open_index(corpus, IndexSettings(), cache)
    assert after.from_cache and not caplog.records
    assert hits(after) == hits(first)


def test_a_valid_entry_written_meanwhile_wins_a_damaged_one_does_not(tmp_path: Path) -> None:
    from retrieval.cache import write_entry

    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    opened = open_index(corpus, IndexSettings(), cache)
    entry = opened.cache_path
    assert entry is not None
    theirs = (entry / "meta.json").stat().st_ino
    write_entry(entry, opened.index, opened.problems, opened.documents, opened.skipped)
    assert (entry / "meta.json").stat().st_ino == theirs  # another process's valid entry: kept
    (entry / "indptr.npy").write_bytes(b"")
    write_entry(entry, opened.index, opened.problems, opened.documents, opened.skipped)
    assert (entry / "meta.json").stat().st_ino != theirs
    assert open_index(corpus, IndexSettings(), cache).from_cache


# -- checksums --------------------------------------------------------------------------------------------


def test_every_file_has_its_checksum_in_meta(tmp_path: Path) -> None:
    opened = open_index(write_corpus(tmp_path / "corpus"), IndexSettings(), tmp_path / "cache")
    assert opened.cache_path is not None
    meta = json.loads((opened.cache_path / "meta.json").read_text(encoding="utf-8"))
    npy = {p.stem for p in opened.cache_path.glob("*.npy")}
    assert set(meta["files"]) == npy
    for name, info in meta["files"].items():
        data = (opened.cache_path / f"{name}.npy").read_bytes()
        assert info == {"bytes": len(data), "crc32": zlib.crc32(data)}


def test_large_files_are_checksummed_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from retrieval import cache as cache_module

    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    first = open_index(corpus, IndexSettings(), cache)
    assert first.cache_path is not None
    monkeypatch.setattr(cache_module, "VERIFY_BYTES", 0)  # every file counts as large here
    _flip_last_byte(first.cache_path / "blob.npy")
    assert open_index(corpus, IndexSettings(), cache).from_cache  # by size only: a load stays fast
    with caplog.at_level(logging.WARNING):
        verified = open_index(corpus, IndexSettings(), cache, verify=True)
    assert not verified.from_cache and "blob.npy fails its checksum" in caplog.text
    assert hits(verified) == hits(first)


def test_damaged_weights_are_computed_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from retrieval import BM25Params

    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    plus = IndexSettings(ranking=BM25Params(algorithm="bm25plus"))
    first = open_index(corpus, IndexSettings(), cache)
    scores = {
        s: open_index(corpus, s, cache).index.search("coral").hits[0].score for s in (plus, IndexSettings())
    }
    assert first.cache_path is not None
    for weights in first.cache_path.glob("weights-*.npy"):  # the build's, and bm25plus's (own sidecar)
        _flip_last_byte(weights)
    for settings in (plus, IndexSettings()):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            again = open_index(corpus, settings, cache)
        assert again.from_cache and "computing the weights again" in caplog.text
        assert again.index.search("coral").hits[0].score == scores[settings]
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            open_index(corpus, settings, cache)
        assert not caplog.records


# -- several entries, least recently used evicted; the embeddings go with their entry ------------------------


def _corpora(tmp_path: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        files = {**FILES, "extra.txt": f"date 2024-01-0{i + 1} Extra\n\nZebras number {i} roam the plains."}
        out.append(write_corpus(tmp_path / f"corpus{i}", files))
    return out


def _entries(cache: Path) -> set[str]:
    return {p.name for p in cache.iterdir() if p.name.startswith("index-")}


def _age_by(path: Path, seconds: float) -> None:
    when = path.stat().st_mtime - seconds
    os.utime(path, (when, when))


def test_another_corpus_does_not_evict_the_bots_index(tmp_path: Path) -> None:
    bot, other = _corpora(tmp_path, 2)
    cache = tmp_path / "cache"
    open_index(bot, IndexSettings(), cache)
    open_index(other, IndexSettings(), cache)  # `corpus-bot ask --corpus OTHER`
    assert open_index(bot, IndexSettings(), cache).from_cache
    assert open_index(other, IndexSettings(), cache).from_cache


def test_the_least_recently_used_entries_are_evicted(tmp_path: Path) -> None:
    a, b, c = _corpora(tmp_path, 3)
    cache = tmp_path / "cache"
    entry_a = open_index(a, IndexSettings(), cache).cache_path
    entry_b = open_index(b, IndexSettings(), cache).cache_path
    assert entry_a is not None and entry_b is not None
    _age_by(entry_a, 200)
    _age_by(entry_b, 100)
    assert open_index(a, IndexSettings(), cache).from_cache  # a use: a is now the most recent
    entry_c = open_index(c, IndexSettings(), cache, max_entries=2).cache_path
    assert entry_c is not None
    assert _entries(cache) == {entry_a.name, entry_c.name}
    # by size: whatever the bound, the entry just made stays; the others go
    d = _corpora(tmp_path / "more", 4)[3]
    entry_d = open_index(d, IndexSettings(), cache, max_bytes=1).cache_path
    assert entry_d is not None and _entries(cache) == {entry_d.name}


def _fake_vectors(cache: Path, fingerprint: str) -> Path:
    folder = cache / f"vectors-{fingerprint}-toy_1"
    folder.mkdir()
    (folder / "vectors.f16").write_bytes(b"\0" * 128)
    (folder / "meta.json").write_text('{"format": "corpus-bot-vectors-1", "rows": 1}', encoding="utf-8")
    return folder


def test_embeddings_are_evicted_with_their_entry_and_only_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retrieval import open_vectors
    from retrieval.encoder import SentenceEncoder
    from tests.test_semantic import ToyEncoder

    monkeypatch.setattr(SentenceEncoder, "load", classmethod(lambda cls, **_: ToyEncoder()))
    a, b, c = _corpora(tmp_path, 3)
    cache = tmp_path / "cache"
    index_a = open_index(a, IndexSettings(), cache).index
    build_a = open_vectors(index_a, cache)
    assert build_a is not None and build_a.run() is not None
    index_b = open_index(b, IndexSettings(), cache).index
    build_b = open_vectors(index_b, cache)  # used to delete a's embeddings
    assert build_b is not None and build_b.run() is not None
    vectors = {p.name for p in cache.iterdir() if p.name.startswith("vectors-")}
    assert {v.split("-")[1] for v in vectors} == {index_a.fingerprint, index_b.fingerprint}
    again = open_vectors(open_index(a, IndexSettings(), cache).index, cache)
    assert again is not None and again.complete  # a's embeddings were kept with a's entry
    orphan = _fake_vectors(cache, "0123456789abcdef")  # of no entry, but fresh: maybe being made
    _age_by(cache / f"index-{cache_key(b, IndexSettings())[0]}", 100)
    for folder in cache.glob(f"vectors-{index_b.fingerprint}-*"):
        for path in [*folder.iterdir(), folder]:
            _age_by(path, 100)
    index_c = open_index(c, IndexSettings(), cache, max_entries=2).index  # evicts b, with its embeddings
    assert not list(cache.glob(f"vectors-{index_b.fingerprint}-*"))
    assert list(cache.glob(f"vectors-{index_a.fingerprint}-*")) and orphan.exists()
    assert len(_entries(cache)) == 2
    for path in [*orphan.iterdir(), orphan]:
        _age_by(path, 7200)
    open_vectors(index_c, cache)
    assert not orphan.exists()  # orphan embeddings, untouched for two hours: abandoned


# -- clean-up: only what this code made, and folders may vanish meanwhile ---------------------------------


def test_clean_up_deletes_only_what_it_made(tmp_path: Path) -> None:
    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    open_index(corpus, IndexSettings(), cache)
    foreign = cache / "index-of-my-photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8")
    not_json = cache / "index-notes"
    not_json.mkdir()
    (not_json / "meta.json").write_text('{"format": "someone-else-1"}', encoding="utf-8")
    other_vectors = cache / "vectors-mine"
    other_vectors.mkdir()
    (other_vectors / "model.bin").write_bytes(b"1")
    fresh_tmp = cache / ".tmp-index-abc-1-1"
    fresh_tmp.mkdir()
    old_tmp = cache / ".tmp-index-abc-2-2"
    old_tmp.mkdir()
    _age_by(old_tmp, 7200)
    (corpus / "new.txt").write_text("date 2024-01-01 New\n\nZebras roam the plains.", encoding="utf-8")
    open_index(corpus, IndexSettings(), cache, max_entries=1)
    assert foreign.exists() and not_json.exists() and other_vectors.exists() and fresh_tmp.exists()
    assert not old_tmp.exists()
    assert len(_entries(cache)) == 3  # ours, and the two that are not ours


def test_clean_up_ignores_folders_that_vanish_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    open_index(corpus, IndexSettings(), cache)
    listing = Path.iterdir

    def iterdir(self: Path):  # type: ignore[no-untyped-def]
        yield from listing(self)
        if self == cache:  # removed by another process between the listing and a look at them
            yield from (cache / n for n in (".tmp-index-gone-1-1", "index-gone", "vectors-gone-m"))

    monkeypatch.setattr(Path, "iterdir", iterdir)
    (corpus / "new.txt").write_text("date 2024-01-01 New\n\nZebras roam the plains.", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        opened = open_index(corpus, IndexSettings(), cache)
    assert not opened.from_cache and not caplog.records
    monkeypatch.undo()
    assert _entries(cache) == {opened.cache_path.name}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "meta",
    ["[]", "null", '"x"', '{"format": "corpus-bot-vectors-1", "rows": 6, "dimension": null}', "[" * 100_000],
)
def test_damaged_embeddings_are_encoded_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, meta: str
) -> None:
    from retrieval import SearchIndex, load_corpus
    from tests.test_semantic import ToyEncoder

    index = SearchIndex.build(load_corpus(write_corpus(tmp_path / "corpus")).documents)
    build = index.vector_build(ToyEncoder(), tmp_path / "cache")
    assert build.run() is not None
    folder = next((tmp_path / "cache").glob("vectors-*"))
    (folder / "meta.json").write_text(meta.replace('"rows": 6', f'"rows": {build.total}'), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        again = index.vector_build(ToyEncoder(), tmp_path / "cache")
    assert not again.complete and "encoding again" in caplog.text
    assert again.run() is not None and index.vector_build(ToyEncoder(), tmp_path / "cache").complete

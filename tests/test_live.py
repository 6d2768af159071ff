"""The live index: new, changed and removed files go live without a rebuild; restarts reuse every segment."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import retrieval.live as live_module
from retrieval import IndexSettings, SearchIndex, load_corpus
from retrieval.cache import CACHE_MAX_ENTRIES
from retrieval.live import LiveIndex
from tests.test_compose import assert_same_index
from tests.test_semantic import ToyEncoder

DOCS = {
    "a.txt": "date 2020-01-01 Harbour news\n\nThe harbour was closed by the storm. Ships waited.\n",
    "b.txt": "date 2020-02-01 Orchard news\n\nThe apple harvest broke a record. Cider was pressed.\n",
    "c.txt": "date 2020-03-01 Council news\n\nThe council approved the bridge budget. The river rose.\n",
}


def write(folder: Path, name: str, text: str, *, age: float = 10.0) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    past = time.time() - age
    os.utime(path, (past, past))  # written "a while ago": settled
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    for name, text in DOCS.items():
        write(folder, name, text)
    return folder


def texts(index: SearchIndex) -> list[str]:
    return [index._store.text(i) for i in range(len(index._store))]


def one_shot(live: LiveIndex) -> SearchIndex:
    """A fresh build of the live documents, in the live index's order."""
    by_name = {d.name: d for d in load_corpus(live.root).documents}
    order = [d.name for d in live.index._store.documents]
    return SearchIndex.build([by_name[n] for n in order], live.settings)


def test_a_new_file_goes_live_and_scores_as_a_fresh_build(corpus: Path, tmp_path: Path) -> None:
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache")
    assert live.generation == 1 and len(live.segments) == 1 and live.documents == 3
    assert not live.index.search("lighthouse keeper").hits
    write(
        corpus, "d.txt", "date 2021-05-05 Lighthouse\n\nThe lighthouse keeper counted ships in the storm.\n"
    )
    update = live.refresh(settle=0)
    assert update.added == ("d.txt",) and update.generation == 2
    assert live.index.search("lighthouse keeper").hits[0].title == "Lighthouse"
    assert len(live.segments) == 2 and live.documents == 4 and live.last_update is not None
    assert_same_index(live.index, one_shot(live))
    assert live.refresh(settle=0).changed_anything is False  # nothing new: no new generation
    assert live.generation == 2


def test_changed_and_removed_files(corpus: Path, tmp_path: Path) -> None:
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache")
    write(corpus, "b.txt", "date 2020-02-01 Orchard news\n\nThe pear harvest failed this year.\n")
    (corpus / "c.txt").unlink()
    update = live.refresh(settle=0)
    assert update.changed == ("b.txt",) and update.removed == ("c.txt",)
    assert not live.index.search("apple cider").hits
    assert not live.index.search("council bridge").hits
    assert live.index.search("pear harvest").hits[0].text == "The pear harvest failed this year."
    assert sorted(d.name for d in live.index._store.documents) == ["a.txt", "b.txt"]
    assert_same_index(live.index, one_shot(live))


def test_a_file_still_being_written_waits(corpus: Path, tmp_path: Path) -> None:
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache")
    path = corpus / "half.txt"
    path.write_text("date 2022-01-01 Half\n\nThe first half of a long", encoding="utf-8")  # just written
    written = os.stat(path).st_mtime
    update = live.refresh(settle=5)
    assert update.pending == ("half.txt",) and not update.changed_anything
    # Ready 5 s after it was written, not 5 s after this look.
    assert update.ready_in is not None and 4.0 < update.ready_in <= 5 - (time.time() - written) + 0.05
    assert not live.index.search("first half").hits
    with open(path, "a", encoding="utf-8") as f:
        f.write(" zeppelin story.\n")
    past = time.time() - 10
    os.utime(path, (past, past))
    update = live.refresh(settle=5)
    assert update.added == ("half.txt",)
    assert live.index.search("zeppelin").hits[0].text == "The first half of a long zeppelin story."


def test_a_copy_still_going_on_goes_live_whole_in_one_refresh(corpus: Path, tmp_path: Path) -> None:
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache")
    write(corpus, "d.txt", "date 2022-02-02 Done\n\nThe airship landed in the rain.\n", age=2.0)
    write(corpus, "e.txt", "date 2022-02-03 Going\n\nThe balloon rose over the fair.\n", age=0.0)
    update = live.refresh(settle=1, gather=10)
    assert sorted(update.pending) == ["d.txt", "e.txt"] and not update.changed_anything
    assert live.documents == 3  # d.txt is written, but waits for the rest of its copy
    assert update.ready_in is not None and 0.5 < update.ready_in <= 1.05  # when e.txt will have settled
    past = time.time() - 2
    os.utime(corpus / "e.txt", (past, past))
    update = live.refresh(settle=1, gather=10)
    assert sorted(update.added) == ["d.txt", "e.txt"] and not update.pending
    assert len(live.segments) == 2  # one new segment for the whole copy


def test_a_copy_that_goes_on_and_on_is_taken_in_part_after_gather_seconds(
    corpus: Path, tmp_path: Path
) -> None:
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache")
    write(corpus, "d.txt", "date 2022-02-02 Done\n\nThe airship landed in the rain.\n", age=12.0)
    write(corpus, "e.txt", "date 2022-02-03 Going\n\nThe balloon rose over the fair.\n", age=0.0)
    update = live.refresh(settle=1, gather=10)
    assert update.added == ("d.txt",) and update.pending == ("e.txt",)
    assert live.documents == 4 and live.index.search("airship").hits[0].doc == "d.txt"


def test_a_broken_new_file_is_named_and_the_rest_goes_live(corpus: Path, tmp_path: Path) -> None:
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache")
    (corpus / "broken.txt").write_bytes(b"\x00\x01\x02" * 50)
    past = time.time() - 10
    os.utime(corpus / "broken.txt", (past, past))
    write(corpus, "good.txt", "date 2021-01-01 Good\n\nA good zeppelin arrived.\n")
    update = live.refresh(settle=0)
    assert update.added == ("good.txt",)
    assert [p.file for p in update.problems if p.skipped] == ["broken.txt"]
    assert live.index.search("zeppelin").hits
    assert "broken.txt" in [p.file for p in live.problems] and live.skipped == 1
    # Seen once: not read again until it changes.
    assert not live.refresh(settle=0).problems


def test_a_restart_indexes_only_the_new_file(corpus: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "cache"
    first = LiveIndex.open(corpus, cache_dir=cache)
    write(corpus, "d.txt", "date 2021-05-05 Lighthouse\n\nThe lighthouse keeper counted ships.\n")
    first.refresh(settle=0)
    write(corpus, "e.txt", "date 2021-06-06 Zeppelin\n\nA zeppelin flew over the harbour.\n")
    read: list[str] = []
    original = live_module.read_document
    monkeypatch.setattr(
        live_module, "read_document", lambda path, name: (read.append(name), original(path, name))[1]
    )
    again = LiveIndex.open(corpus, cache_dir=cache)
    assert read == ["e.txt"]
    assert again.index.search("zeppelin").hits and again.index.search("lighthouse").hits
    assert len(again.segments) == 3 and again.generation == 3
    assert texts(again.index) == texts(one_shot(again))


def test_an_index_cached_before_segments_is_the_first_segment(corpus: Path, tmp_path: Path) -> None:
    from retrieval import open_index

    cache = tmp_path / "cache"
    opened = open_index(corpus, cache_dir=cache)
    live = LiveIndex.open(corpus, cache_dir=cache)
    assert live.segments[0].entry == opened.cache_path.name  # type: ignore[union-attr]
    assert live.index.fingerprint == opened.index.fingerprint


def disk_full(*args: object, **kwargs: object) -> None:
    """A stand-in for a cache write that fails half way."""
    raise OSError("disk full")


def test_a_crash_while_writing_a_segment_leaves_the_last_manifest(
    corpus: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "cache"
    live = LiveIndex.open(corpus, cache_dir=cache)
    write(corpus, "d.txt", "date 2021-05-05 Lighthouse\n\nThe lighthouse keeper counted ships.\n")
    monkeypatch.setattr(live_module, "write_entry", disk_full)
    with pytest.raises(OSError):
        live.refresh(settle=0)
    assert live.generation == 1 and live.update_errors == 1 and "disk full" in (live.last_error or "")
    assert not live.index.search("lighthouse").hits  # the index in use stays as it was
    monkeypatch.undo()
    restarted = LiveIndex.open(corpus, cache_dir=cache)  # the manifest still names a consistent set
    assert restarted.index.search("lighthouse").hits and restarted.generation == 2


def test_a_crash_in_the_middle_of_a_merge_leaves_the_last_manifest(
    corpus: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "cache"
    live = LiveIndex.open(corpus, cache_dir=cache)
    write(corpus, "d.txt", "date 2021-05-05 Lighthouse\n\nThe lighthouse keeper counted ships.\n")
    live.refresh(settle=0)
    (corpus / "b.txt").unlink()
    live.refresh(settle=0)
    before = (live.generation, len(live.segments), sorted(d.name for d in live.index._store.documents))

    monkeypatch.setattr(live_module, "write_forwards", disk_full)  # the merged entry written, not yet named
    with pytest.raises(OSError):
        live.merge(force=True)
    assert (live.generation, len(live.segments)) == before[:2]
    assert live.index.search("lighthouse keeper").hits[0].title == "Lighthouse"
    monkeypatch.undo()
    restarted = LiveIndex.open(corpus, cache_dir=cache)  # the manifest still names the segments it did
    assert (restarted.generation, len(restarted.segments)) == before[:2]
    names = sorted(d.name for d in restarted.index._store.documents)
    assert names == before[2] == ["a.txt", "c.txt", "d.txt"]
    assert not restarted.index.search("apple cider").hits  # b.txt stays masked
    assert restarted.merge(force=True) is not None and len(restarted.segments) == 1
    assert_same_index(restarted.index, one_shot(restarted))


def test_a_damaged_segment_is_indexed_again(corpus: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    live = LiveIndex.open(corpus, cache_dir=cache)
    write(corpus, "d.txt", "date 2021-05-05 Lighthouse\n\nThe lighthouse keeper counted ships.\n")
    live.refresh(settle=0)
    damaged = cache / live.segments[1].entry  # type: ignore[operator]
    (damaged / "meta.json").write_text("{", encoding="utf-8")
    again = LiveIndex.open(corpus, cache_dir=cache)
    assert again.index.search("lighthouse").hits and again.documents == 4


def test_another_process_update_is_adopted(corpus: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    bot = LiveIndex.open(corpus, cache_dir=cache)
    tool = LiveIndex.open(corpus, cache_dir=cache)  # `corpus-bot index` run beside the bot
    write(corpus, "d.txt", "date 2021-05-05 Lighthouse\n\nThe lighthouse keeper counted ships.\n")
    assert tool.refresh(settle=0).added == ("d.txt",)
    update = bot.refresh(settle=0)
    assert not update.added  # indexed by the other one: only taken over
    assert bot.generation == tool.generation == 2
    assert bot.index.search("lighthouse").hits


def test_a_search_in_flight_keeps_its_index(corpus: Path, tmp_path: Path) -> None:
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache")
    held = live.index
    (corpus / "a.txt").unlink()
    live.refresh(settle=0)
    assert held.search("harbour storm").hits  # the old generation still answers whoever holds it
    assert not live.index.search("harbour storm").hits


def test_searches_never_fail_while_files_come_and_go(corpus: Path, tmp_path: Path) -> None:
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache")
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            try:
                index = live.index
                for hit in index.search("harbour storm apple", k=3).hits:
                    index.context(hit.sentence_id)
            except BaseException as error:  # any failure is the test's finding
                errors.append(error)

    threads = [threading.Thread(target=search) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(8):
            write(
                corpus, f"new{i}.txt", f"date 2021-01-{i + 1:02d} New {i}\n\nThe harbour storm {i} was new.\n"
            )
            if i % 3 == 2:
                (corpus / f"new{i - 1}.txt").unlink()
            live.refresh(settle=0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert_same_index(live.index, one_shot(live))


def test_many_segments_survive_the_cache_bounds(corpus: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    live = LiveIndex.open(corpus, cache_dir=cache)
    for i in range(CACHE_MAX_ENTRIES + 3):
        write(corpus, f"n{i}.txt", f"date 2021-01-01 N{i}\n\nNumber {i} zeppelin.\n")
        live.refresh(settle=0)
    assert len(live.segments) == CACHE_MAX_ENTRIES + 4
    assert all((cache / s.entry).is_dir() for s in live.segments if s.entry)
    again = LiveIndex.open(corpus, cache_dir=cache)
    assert len(again.index.search("zeppelin", k=20).hits) == CACHE_MAX_ENTRIES + 3


def test_merge_folds_segments_and_keeps_the_embeddings(corpus: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    live = LiveIndex.open(corpus, cache_dir=cache)
    encoder = ToyEncoder()
    for i in range(3):
        write(corpus, f"m{i}.txt", f"date 2021-02-0{i + 1} M{i}\n\nThe zeppelin number {i} landed.\n")
        live.refresh(settle=0)
    assert live.merge() is None  # four segments, nothing removed: not due yet
    (corpus / "b.txt").unlink()
    live.refresh(settle=0)
    live.index.vector_build(encoder, cache).run()
    before = live.index
    question = encoder.encode_query("zeppelin landed")
    expected = before.vector_build(encoder, cache).vectors.nearest(question, 5)  # type: ignore[union-attr]
    update = live.merge(force=True)
    assert update is not None and update.merged and len(live.segments) == 1
    assert not live.segments[0].removed
    assert_same_index(live.index, one_shot(live))
    calls = encoder.calls
    build = live.index.vector_build(encoder, cache)
    assert build.complete and encoder.calls == calls  # carried over, not encoded again
    got = build.vectors.nearest(question, 5)  # type: ignore[union-attr]
    np.testing.assert_allclose(got.cosines, expected.cosines, rtol=1e-3)
    assert got.ids.tolist() == expected.ids.tolist()
    restarted = LiveIndex.open(corpus, cache_dir=cache)
    assert len(restarted.segments) == 1 and restarted.index.fingerprint == live.index.fingerprint


def test_without_a_cache_folder_it_still_follows_the_folder(corpus: Path) -> None:
    live = LiveIndex.open(corpus, IndexSettings())
    write(corpus, "d.txt", "date 2021-05-05 Lighthouse\n\nThe lighthouse keeper counted ships.\n")
    assert live.refresh(settle=0).added == ("d.txt",)
    assert live.index.search("lighthouse").hits
    assert live.merge(force=True) is not None and len(live.segments) == 1
    assert live.index.search("lighthouse").hits


def test_an_entry_without_text_hashes_gets_them_kept_beside_it(corpus: Path, tmp_path: Path) -> None:
    import json

    from retrieval import cache, open_index

    cache_dir = tmp_path / "cache"
    entry = open_index(corpus, cache_dir=cache_dir).cache_path
    assert entry is not None
    meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
    del meta["checksum"], meta["files"]["text_hash"], meta["shapes"]["text_hash"]  # as before segments
    (entry / "text_hash.npy").unlink()
    (entry / "meta.json").write_bytes(cache._with_checksum(json.dumps(meta).encode("utf-8")))
    live = LiveIndex.open(corpus, cache_dir=cache_dir)
    assert live.segments[0].entry == entry.name and live.segments[0].index._store.text_hash is None
    write(corpus, "d.txt", "date 2021-05-05 Lighthouse\n\nThe harbour was closed by the storm.\n")
    live.refresh(settle=0)  # composing needs the hashes (a repeated sentence is shown once)
    assert live.index.search("harbour storm").hits[0].duplicates == 1
    assert (entry / "text_hash.npy").exists() and (entry / "text_hash.json").exists()
    again = LiveIndex.open(corpus, cache_dir=cache_dir)
    assert again.segments[0].index._store.text_hash is not None
    assert again.index.search("harbour storm").hits[0].duplicates == 1


@pytest.mark.parametrize("with_cache", [True, False])
def test_sentence_addresses_survive_merges(corpus: Path, tmp_path: Path, with_cache: bool) -> None:
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache" if with_cache else None)
    for i in range(2):
        write(corpus, f"m{i}.txt", f"date 2021-02-0{i + 1} M{i}\n\nThe zeppelin number {i} landed.\n")
        live.refresh(settle=0)
    first = live.index
    keys = {first._store.text(i): first.sentence_key(i) for i in range(len(first._store))}
    (corpus / "a.txt").unlink()
    live.refresh(settle=0)
    live.merge(force=True)
    write(corpus, "later.txt", "date 2021-03-01 Later\n\nA walrus arrived.\n")
    live.refresh(settle=0)
    live.merge(force=True)  # a second merge: addresses from before the first still resolve
    index = live.index
    for text, (segment, local) in keys.items():
        found = index.find_sentence(segment, local)
        if text.startswith(("The harbour", "Ships")):  # a.txt, removed
            assert found is None
        else:
            assert found is not None and index._store.text(found) == text


def test_no_merge_while_a_segment_is_being_embedded(corpus: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    live = LiveIndex.open(corpus, cache_dir=cache)
    encoder = ToyEncoder()
    live.index.vector_build(encoder, cache).run()  # the first segment has its embeddings
    write(corpus, "d.txt", "date 2021-05-05 Lighthouse\n\nThe lighthouse keeper counted ships.\n")
    live.refresh(settle=0)
    assert live.merge(force=True) is None  # d.txt's segment has none yet: merging would embed all again
    live.index.vector_build(encoder, cache).run()
    assert live.merge(force=True) is not None
    assert live.index.vector_build(encoder, cache).complete


def test_a_finished_background_embedding_lets_its_generation_go(corpus: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    live = LiveIndex.open(corpus, cache_dir=cache)
    live._encoder = ToyEncoder()  # what open_vectors sets, without loading the real model
    live.index.attach_vectors(live._vectors_for(live.index))
    for i in range(3):
        write(corpus, f"e{i}.txt", f"date 2021-03-0{i + 1} E{i}\n\nThe airship number {i} flew.\n")
        live.refresh(settle=0)
    deadline = time.monotonic() + 10
    while live._embedders and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live._embedders == []  # none keeps an old composition alive once done
    assert live.index.semantic_ready and live.index.search("airship number 2").hits
    live.close()


def test_the_model_loads_beside_the_opening(corpus: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import retrieval.cache
    import retrieval.live

    loads: list[tuple[str, int]] = []

    def load(settings: object, *, threads: int = 1, cache_dir: Path | None = None) -> ToyEncoder:
        assert cache_dir == tmp_path / "cache"  # where the model's graph is kept
        loads.append((threading.current_thread().name, threads))
        return ToyEncoder()

    monkeypatch.setattr(retrieval.cache, "load_encoder", load)  # what the loading thread calls
    monkeypatch.setattr(retrieval.live, "load_encoder", load)
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache", meaning_threads=1)
    build = live.open_vectors(threads=1)
    assert loads == [("load-encoder", 1)]  # once, in its own thread, started by open()
    assert build is not None and isinstance(live._encoder, ToyEncoder)
    other = LiveIndex.open(corpus, cache_dir=tmp_path / "cache", meaning_threads=1)
    other.open_vectors(threads=2)  # not what was loaded: loaded again, as asked
    assert (threading.current_thread().name, 2) in loads


def test_the_cache_is_cleaned_up_after_merges_and_once_a_while(
    corpus: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import retrieval.live

    cleanups: list[set[str]] = []
    monkeypatch.setattr(retrieval.live, "prune", lambda folder, keep_entries: cleanups.append(keep_entries))
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache")
    assert len(cleanups) == 1  # the first manifest written
    for i in range(3):
        write(corpus, f"p{i}.txt", f"date 2021-04-0{i + 1} P{i}\n\nThe glider number {i} soared.\n")
        live.refresh(settle=0)
    assert len(cleanups) == 1  # segments only added: not every time
    live.merge(force=True)
    assert len(cleanups) == 2 and cleanups[-1] == {live.segments[0].entry}  # entries let go: at once
    monkeypatch.setattr(retrieval.live, "PRUNE_EVERY", 0.0)
    write(corpus, "p9.txt", "date 2021-04-09 P9\n\nThe last glider soared.\n")
    live.refresh(settle=0)
    assert len(cleanups) == 3


def test_updates_while_searching_are_built_as_background_work(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retrieval.search as search_module

    seen: list[bool] = []
    real = search_module.build_parts

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs["background"])
        return real(*args, **kwargs)

    monkeypatch.setattr(search_module, "build_parts", spy)
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache")
    assert seen == [False]  # opening: nothing is answered yet, full speed
    write(corpus, "d.txt", "date 2021-05-05 Lighthouse\n\nThe lighthouse keeper counted ships.\n")
    live.refresh(settle=0)
    assert seen == [False, True]
    assert live.index.search("lighthouse keeper").hits

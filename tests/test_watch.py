"""The corpus watcher: files dropped into the folder go live by themselves, half-written ones only whole."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import retrieval.live as live_module
from retrieval.live import LiveIndex
from retrieval.watch import CorpusWatcher
from tests.test_live import DOCS, write

WAIT = 20.0  # seconds an event may take on a slow machine (a bound, not a measurement)


def wait_for(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def live(tmp_path: Path) -> LiveIndex:
    folder = tmp_path / "corpus"
    for name, text in DOCS.items():
        write(folder, name, text)
    return LiveIndex.open(folder, cache_dir=tmp_path / "cache")


@pytest.fixture
def watcher(live: LiveIndex) -> Iterator[CorpusWatcher]:
    watching = CorpusWatcher(live, settle=0.3, poll_every=3600)
    watching.start()
    yield watching
    watching.stop()


def found(live: LiveIndex, question: str) -> bool:
    return bool(live.index.search(question).hits)


def test_a_file_dropped_in_goes_live(live: LiveIndex, watcher: CorpusWatcher) -> None:
    (live.root / "new.txt").write_text("date 2021-01-01 New\n\nA zeppelin landed.\n", encoding="utf-8")
    assert wait_for(lambda: found(live, "zeppelin"))
    (live.root / "sub").mkdir()
    (live.root / "sub" / "deep.txt").write_text("date 2021-01-02 Deep\n\nA walrus swam.\n", encoding="utf-8")
    assert wait_for(lambda: found(live, "walrus"))
    (live.root / "new.txt").unlink()
    assert wait_for(lambda: not found(live, "zeppelin"))
    assert found(live, "walrus") and found(live, "harbour")


def test_a_new_file_is_looked_at_once_it_has_settled(
    live: LiveIndex, watcher: CorpusWatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher does not refresh only to find the file still young: it waits until the file has
    been still for ``settle`` since it was written, then reads it in one refresh."""
    assert wait_for(lambda: watcher.refreshes >= 1)  # the first look, once the watch is in place
    looks: list[live_module.Update] = []
    refresh = live.refresh
    monkeypatch.setattr(live, "refresh", lambda **kw: looks.append(refresh(**kw)) or looks[-1])
    path = live.root / "fresh.txt"
    path.write_text("date 2021-01-01 Fresh\n\nA zeppelin landed.\n", encoding="utf-8")
    written = time.monotonic()
    assert wait_for(lambda: found(live, "zeppelin"))
    assert time.monotonic() - written >= 0.3 - 0.05  # not before it settled
    assert wait_for(lambda: bool(looks))  # the refresh that took it in has returned
    assert looks[0].added == ("fresh.txt",)  # the first look after the write took it in
    assert not any(update.pending for update in looks)  # none found it young


def test_a_file_written_in_pieces_is_indexed_whole(live: LiveIndex, watcher: CorpusWatcher) -> None:
    seen: list[list[str]] = []
    live.on_update(lambda old, new, update: seen.append([new._store.text(i) for i in range(len(new._store))]))
    path = live.root / "slow.txt"
    with open(path, "w", encoding="utf-8") as f:
        f.write("date 2021-01-01 Slow\n\nThe first half of a sentence")
        for piece in [" that keeps", " growing for", " a while about", " the zeppelin."]:
            f.flush()
            time.sleep(0.1)
            f.write(piece)
    assert wait_for(lambda: found(live, "zeppelin"))
    whole = "The first half of a sentence that keeps growing for a while about the zeppelin."
    assert live.index.search("zeppelin").hits[0].text == whole
    assert all(whole in texts or not any("first half" in t for t in texts) for texts in seen)


def test_what_came_before_the_watch_and_a_request(live: LiveIndex, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write(live.root, "early.txt", "date 2021-01-01 Early\n\nThe walrus came early.\n")  # before watching
    watching = CorpusWatcher(live, settle=0.3, poll_every=3600)
    watching.start()
    try:
        assert wait_for(lambda: found(live, "walrus"))  # the first look, once the watch is in place
        asked = []
        monkeypatch.setattr(
            live, "refresh", lambda **kw: asked.append(kw) or live_module.Update(live.generation)
        )
        watching.request()  # what SIGHUP does
        assert wait_for(lambda: bool(asked))
    finally:
        watching.stop()


def test_another_process_manifest_is_picked_up(live: LiveIndex, watcher: CorpusWatcher) -> None:
    tool = LiveIndex.open(live.root, cache_dir=live.cache_dir)  # `corpus-bot index` beside the bot
    write(live.root, "tool.txt", "date 2021-01-01 Tool\n\nThe walrus was indexed elsewhere.\n")
    tool.refresh(settle=0)
    assert wait_for(lambda: found(live, "walrus"))
    assert wait_for(lambda: live.generation >= tool.generation)


def test_segments_are_merged_when_many(live: LiveIndex, watcher: CorpusWatcher, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(live_module, "MAX_SEGMENTS", 3)
    for i in range(5):
        write(live.root, f"m{i}.txt", f"date 2021-01-0{i + 1} M{i}\n\nZeppelin number {i}.\n", age=5)
        text = f"Zeppelin number {i}."
        assert wait_for(lambda text=text: text in [h.text for h in live.index.search("zeppelin", k=10).hits])
    assert wait_for(lambda: len(live.segments) <= 3)
    assert len(live.index.search("zeppelin", k=10).hits) == 5


def test_a_failing_refresh_leaves_the_index_and_the_watcher_alive(
    live: LiveIndex, watcher: CorpusWatcher, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    real = live_module.write_entry

    def disk_full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(live_module, "write_entry", disk_full)
    write(live.root, "x.txt", "date 2021-01-01 X\n\nThe walrus waited.\n")
    assert wait_for(lambda: live.update_errors >= 1)
    assert not found(live, "walrus") and found(live, "harbour")
    monkeypatch.setattr(live_module, "write_entry", real)
    os.utime(live.root / "x.txt")  # the next change is heard of, and the file goes live then
    assert wait_for(lambda: found(live, "walrus"))



@pytest.mark.skipif(not hasattr(os, "getpriority") or os.uname().sysname != "Linux",
                    reason="per-thread nice values are Linux's")
@pytest.mark.parametrize("start", ["start", "start_on_request"])
def test_refreshes_run_at_a_lower_priority_than_the_searches(live: LiveIndex, start: str) -> None:
    watching = CorpusWatcher(live, settle=0.3, poll_every=3600)
    getattr(watching, start)()
    try:
        thread = watching._thread
        assert thread is not None and thread.native_id is not None
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert wait_for(lambda: os.getpriority(os.PRIO_PROCESS, thread.native_id) > min(ours, 18))
        assert os.getpriority(os.PRIO_PROCESS, 0) == ours  # the rest of the process as it was
    finally:
        watching.stop()

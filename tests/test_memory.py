"""Freed memory goes back to the system when asked; an index generation is freed as soon as it is let go."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval import LiveIndex
from retrieval.corpus import list_corpus_files
from retrieval.memory import freeze_loaded_objects, release_free_memory


def resident_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc_trim")
def test_freed_heap_memory_is_given_back() -> None:
    def churn() -> None:  # arrays of the sizes an update frees, allocated and freed by several threads
        kept = [np.ones(int(n)) for n in np.linspace(150_000, 1_500_000, 40)]
        del kept[::2]
        kept.clear()

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    before = resident_kib()
    assert release_free_memory() is True
    assert resident_kib() <= before


@pytest.fixture
def collector_off() -> Iterator[None]:
    """No automatic collection meanwhile: what is freed here is freed by reference counting alone."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    past = time.time() - 10
    os.utime(path, (past, past))


def test_a_replaced_generation_is_freed_without_the_cycle_collector(
    tmp_path: Path, collector_off: None
) -> None:
    # A generation that sat in a reference cycle would keep its corpus-sized arrays until a full
    # collection, a pause of ~250 ms at a million sentences, or for ever once frozen.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write(corpus, "a.txt", "date 2020-01-01 Harbour\n\nThe harbour was closed by the storm. Ships waited.\n")
    live = LiveIndex.open(corpus, cache_dir=tmp_path / "cache")
    write(corpus, "b.txt", "date 2020-02-01 Orchard\n\nThe apple harvest broke a record.\n")
    live.refresh(settle=0)
    live.index.warm_up()  # the typo index, the lexicons, the title index: everything a generation holds
    assert live.index.composition is not None and live.index.search("harbor storm").hits
    composed = weakref.ref(live.index)  # made of the two segments, which the next generation keeps
    write(corpus, "c.txt", "date 2020-03-01 Council\n\nThe council approved the bridge budget.\n")
    live.refresh(settle=0)
    live.index.warm_up()
    assert live.index.search("bridge budget").hits
    assert composed() is None
    live.close()


def test_listing_the_corpus_leaves_no_cyclic_garbage(tmp_path: Path, collector_off: None) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.txt", "sub/b.txt"):
        (tmp_path / name).write_text("date 2020-01-01 T\n\nText.\n", encoding="utf-8")
    files, _ = list_corpus_files(tmp_path)
    assert [name for name, _ in files] == ["a.txt", "sub/b.txt"]
    assert gc.collect() == 0


def test_freezing_leaves_what_is_loaded_out_of_collections() -> None:
    loaded = [[i] for i in range(1_000)]
    try:
        freeze_loaded_objects()
        assert gc.get_freeze_count() >= len(loaded)
        assert all(not gc.is_finalized(item) for item in loaded[:3])
    finally:
        gc.unfreeze()  # the rest of the test session collects as before


_HEAP_CREEP = """
import sys
import numpy as np
from retrieval.memory import map_large_blocks_apart

def anon_mib():
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("RssAnon:"))

if sys.argv[1] == "apart":
    assert map_large_blocks_apart()
big = np.ones(16 << 17)  # 16 MiB, a mapping of its own: freeing it raises glibc's threshold to 16 MiB
del big
base = anon_mib()
arrays, kept = [], []
for _ in range(100):
    arrays.append(np.ones(2 << 17))  # 2 MiB each (an update's arrays)
    kept.append(np.ones(1000))  # and a small block that stays, after each
del arrays
print(anon_mib() - base)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_large_blocks_mapped_apart_go_back_to_the_system_when_freed() -> None:
    import subprocess

    def kept_mib(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _HEAP_CREEP, mode], capture_output=True, text=True,
                              check=True, timeout=60)  # fmt: skip
        return int(done.stdout.strip())

    # Left to glibc, the freed 2 MiB blocks stay in its heap between the small ones: ~200 MiB kept.
    assert kept_mib("plain") > 150
    assert kept_mib("apart") < 20

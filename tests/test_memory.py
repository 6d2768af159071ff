"""Freed memory goes back to the system when asked."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from retrieval.memory import release_free_memory


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

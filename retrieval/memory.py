"""Giving memory back to the system, and keeping the garbage collector's pauses short.

Each update of a live index builds arrays the size of the corpus (a million sentences: tens of MiB each)
and frees the previous generation's. glibc's allocator keeps most of what is freed in its heaps, split
between the threads that freed it, and gives it back only when asked: over a few dozen updates and one
merge, a process at 0.8 GiB grew past 4 GiB of memory it no longer used. ``malloc_trim`` returns the
free pages (after a merge at a million sentences: 337 MiB, in a few milliseconds).

Below its "mmap threshold" glibc serves a block from those heaps, and each time a block above it is freed
it raises the threshold to that block's size, up to 32 MiB: soon the index's arrays of 1-32 MiB all come
from the heaps, where the freed ones are reused only by blocks that fit in them, and the process's memory
creeps up with every update. ``map_large_blocks_apart`` fixes the threshold at 1 MiB: each larger block is
a mapping of its own, returned to the system the moment it is freed. Measured at a million sentences
(``benchmarks/bench_growth.py``, ``bench_latency.py``): anonymous memory grew 122 MiB over 20 one-document
updates instead of 200, the batch's peak fell from 1.47x to 1.41x its steady state, and questions were
faster too (p50 4.2-5.0 ms against 5.6-6.5): fresh mappings of the scoring arrays cost less than reused
heap memory here. The price: composing a generation touches fresh pages (0.25 s against 0.16 s at that
size), which the watcher's lowered priority keeps off the questions (``retrieval.watch``).

Python's cyclic collector, when it collects the oldest generation, walks every container object alive,
holding the interpreter lock: with the lexicons, the typo index and the vocabulary loaded that is
~150,000 objects and ~200-250 ms on this project's machines, during which no question is answered; and an
update's temporary objects (file listings, the manifest) bring one on every update or two.
``freeze_loaded_objects`` moves what is alive once loading is done into the collector's permanent
generation (``gc.freeze``), so that later full collections walk only what came after: 25-50 ms.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys

log = logging.getLogger(__name__)

LARGE_BLOCK = 1 << 20  # bytes: blocks this large or larger are mapped apart (``map_large_blocks_apart``)
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's <malloc.h>

_trim = _mallopt = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _trim = _libc.malloc_trim
        _trim.argtypes = [ctypes.c_size_t]
        _trim.restype = ctypes.c_int
        _mallopt = _libc.mallopt
        _mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        _mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim): nothing to give back this way
        _trim = _mallopt = None


def release_free_memory() -> bool:
    """Return the allocator's free memory to the system; True if this platform can."""
    if _trim is None:
        return False
    _trim(0)
    return True


def map_large_blocks_apart(threshold: int = LARGE_BLOCK) -> bool:
    """Have the allocator map every block of ``threshold`` bytes or more on its own, for good (see the
    module's docstring); True if this platform's allocator took it. Call it once, at the start of a
    long-running process, before the index is loaded."""
    if _mallopt is None:
        return False
    return bool(_mallopt(_M_MMAP_THRESHOLD, int(threshold)))


def freeze_loaded_objects() -> None:
    """Collect once, then leave everything alive now out of all later collections (see the module's
    docstring). Call it when the long-lived structures are built: after ``SearchIndex.warm_up``.

    What is frozen is still freed by reference counting when let go (an index generation has no reference
    cycles, ``tests/test_memory.py`` checks); only a cycle among frozen objects would stay. So call it once
    per process, after start-up, not after every update."""
    gc.collect()
    gc.freeze()

"""Giving memory back to the system, and keeping the garbage collector's pauses short.

Each update of a live index builds arrays the size of the corpus (a million sentences: tens of MiB each)
and frees the previous generation's. glibc's allocator keeps most of what is freed in its heaps, split
between the threads that freed it, and gives it back only when asked: over a few dozen updates and one
merge, a process at 0.8 GiB grew past 4 GiB of memory it no longer used. ``malloc_trim`` returns the
free pages (after a merge at a million sentences: 337 MiB, in a few milliseconds).

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

_trim = None
if sys.platform.startswith("linux"):
    try:
        _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        _trim.argtypes = [ctypes.c_size_t]
        _trim.restype = ctypes.c_int
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim): nothing to give back this way
        _trim = None


def release_free_memory() -> bool:
    """Return the allocator's free memory to the system; True if this platform can."""
    if _trim is None:
        return False
    _trim(0)
    return True


def freeze_loaded_objects() -> None:
    """Collect once, then leave everything alive now out of all later collections (see the module's
    docstring). Call it when the long-lived structures are built: after ``SearchIndex.warm_up``.

    What is frozen is still freed by reference counting when let go (an index generation has no reference
    cycles, ``tests/test_memory.py`` checks); only a cycle among frozen objects would stay. So call it once
    per process, after start-up, not after every update."""
    gc.collect()
    gc.freeze()

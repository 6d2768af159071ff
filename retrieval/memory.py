"""Giving memory back to the system once an update has let go of the previous generation.

Each update of a live index builds arrays the size of the corpus (a million sentences: tens of MiB each)
and frees the previous generation's. glibc's allocator keeps most of what is freed in its heaps, split
between the threads that freed it, and gives it back only when asked: over a few dozen updates and one
merge, a process at 0.8 GiB grew past 4 GiB of memory it no longer used. ``malloc_trim`` returns the
free pages (after a merge at a million sentences: 337 MiB, in a few milliseconds).
"""

from __future__ import annotations

import ctypes
import ctypes.util
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

"""Many small reads from a file at scattered offsets, without letting other Python threads run in between.

A search reads a few hundred scattered rows (one embedding each) from a file in the cache.
``os.pread`` releases the GIL around every call, so beside a busy thread (an index update, a merge) each
read ends by waiting for that thread's switch interval (5 ms by default) before the search may go on: a
few hundred reads turned a 30 ms search into a second. These reads come from the page cache in
microseconds, so holding the GIL through them costs the other threads nothing they would notice, while
the search keeps its fair share of the interpreter. A call through ctypes costs ~3 us more than
``os.pread``, so one-off reads (a quote's text, the thousands a phrase check makes) stay with ``os.pread``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
from collections.abc import Sequence

import numpy as np

HELD_READ_LIMIT = 1 << 16  # bytes: larger reads let other threads run while they wait for the disk

_libc: ctypes.PyDLL | None = None
_pread = None
if sys.platform.startswith("linux") or sys.platform == "darwin":
    try:
        # PyDLL, unlike CDLL, keeps the GIL held during the call.
        _libc = ctypes.PyDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _pread = _libc.pread
        _pread.restype = ctypes.c_ssize_t
        _pread.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64]
    except (OSError, AttributeError):  # no usable C library: os.pread everywhere
        _libc = _pread = None


def pread_rows(fd: int, row_bytes: int, offsets: Sequence[int]) -> np.ndarray:
    """``row_bytes`` bytes at each of ``offsets``, one row after another (uint8, ``len(offsets) *
    row_bytes``), read holding the GIL. A row the file ends before is an error, as a short file is."""
    out = np.empty(len(offsets) * row_bytes, dtype=np.uint8)
    held = _pread is not None and row_bytes <= HELD_READ_LIMIT
    base = out.ctypes.data
    for i, offset in enumerate(offsets):
        if held and _read_into(fd, base + i * row_bytes, row_bytes, offset) == row_bytes:
            continue
        # Not held, or a short or failed read: os.pread finishes it, or says why it cannot.
        out[i * row_bytes : (i + 1) * row_bytes] = np.frombuffer(_exactly(fd, row_bytes, offset), np.uint8)
    return out


def _read_into(fd: int, address: int, size: int, offset: int) -> int:
    """pread(2) into memory at ``address``; -1 on an error other than EINTR (the caller falls back)."""
    assert _pread is not None
    while True:
        got = int(_pread(fd, address, size, offset))
        if got >= 0 or ctypes.get_errno() != errno.EINTR:
            return got


def _exactly(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise OSError(errno.EIO, f"the file ends before byte {offset + size} (read {len(data)} of {size})")
    return data

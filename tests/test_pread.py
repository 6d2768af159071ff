"""Row reads that keep the GIL return what os.pread returns, and fail as it fails."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval.pread import HELD_READ_LIMIT, pread_rows


@pytest.fixture
def data_file(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    data = np.random.default_rng(0).integers(0, 256, size=HELD_READ_LIMIT * 3, dtype=np.uint8).tobytes()
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data
    os.close(fd)


def test_rows_are_laid_one_after_another(data_file: tuple[int, bytes]) -> None:
    fd, data = data_file
    offsets = [0, 768 * 40, 5, 768 * 3]
    rows = pread_rows(fd, 768, offsets)
    assert rows.tobytes() == b"".join(data[o : o + 768] for o in offsets)
    assert pread_rows(fd, 768, []).size == 0
    big = HELD_READ_LIMIT + 1  # past the limit: through os.pread, the same bytes
    assert pread_rows(fd, big, [3, 11]).tobytes() == data[3 : 3 + big] + data[11 : 11 + big]


def test_a_row_past_the_end_or_a_closed_file_is_an_error(
    data_file: tuple[int, bytes], tmp_path: Path
) -> None:
    fd, data = data_file
    with pytest.raises(OSError, match="ends before"):
        pread_rows(fd, 768, [len(data) - 100])
    path = tmp_path / "other.bin"
    path.write_bytes(b"x" * 10)
    closed = os.open(path, os.O_RDONLY)
    os.close(closed)
    with pytest.raises(OSError):
        pread_rows(closed, 4, [0])

"""Sentences -> embeddings on disk, and the dense stage: the sentences nearest a question by meaning.

:class:`SentenceVectors` is one unit-length embedding per sentence of one index (rows in sentence-id order)
with the model that made them; ``nearest`` is an exhaustive dot product (cosine), which on 2 cores is about
1 ms per 100k sentences held as float32. :class:`VectorBuild` makes them, off the event loop: the corpus is
encoded in chunks appended to a file in the cache, so a build that is stopped (a restart, a crash) goes on
where it stopped, and a finished file is renamed into place, so a reader never sees half of one. A search
asks the build for its vectors and gets ``None`` until they are complete: BM25 answers meanwhile.

On disk, under the index cache folder: ``vectors-<index fingerprint>-<model>/`` with ``vectors.f16`` (float16
rows, half the size of float32 and no measurable loss in ranking) and ``meta.json``; and ``titles.f16``, one
row per document, its title's embedding (a document's subject, which its sentences often leave unsaid:
the fuse stage lends a share of its cosine to every sentence of the document). A folder made before titles
were embedded is used as it is, its titles encoded by the next ``run()`` (seconds: one row per document).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from retrieval.index import top_k
from retrieval.pread import pread_rows

log = logging.getLogger(__name__)

_CHUNK = 128  # sentences encoded between two appends to the partial file, progress updates and stop checks
# Up to this many bytes as float32 (~87k sentences of 384 numbers) the vectors are held in memory and every
# question is compared with every sentence: a scan bound by memory bandwidth, ~4.5 ms per 30k sentences
# and ~20 ms per 100k on one core here (benchmarks/bench_latency.py). Beyond it they stay on disk (float16)
# and only the candidates of the other stages are compared: a full scan of a million rows would cost
# ~150 ms a question and 1.5 GB of memory.
EXHAUSTIVE_BYTES = 128 * 2**20
_FORMAT = "corpus-bot-vectors-1"


class Encoder(Protocol):
    """What the dense stage needs of a sentence encoder (``retrieval.encoder.SentenceEncoder``)."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: Callable[[int], None] | None = None
    ) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class DenseScores:
    """Sentences and their cosine to the question, best first."""

    ids: np.ndarray  # int64
    cosines: np.ndarray  # float32


class SentenceVectors:
    """One embedding per sentence (row i is sentence i), unit length, from the model ``model_id``."""

    def __init__(self, matrix: np.ndarray, model_id: str) -> None:
        self.matrix = matrix
        self.model_id = model_id
        # Held in memory as float32: searched whole. Otherwise only rows asked for are read, with pread:
        # reading a row through the memory map maps its whole 2 MiB block into the process, so a few
        # hundred questions made the 700 MB file of a million sentences resident (pread: ~0.7 ms for
        # the ~250 rows of a question, and nothing stays mapped).
        self.exhaustive = matrix.dtype == np.float32
        filename = getattr(matrix, "filename", None)
        self._fd = os.open(filename, os.O_RDONLY) if not self.exhaustive and filename else None

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def nearest(self, query: np.ndarray, k: int) -> DenseScores:
        """The ``k`` sentences nearest ``query`` (a unit vector), best first; ties by the lower id. Empty
        when the vectors are too many to scan (see ``EXHAUSTIVE_BYTES``)."""
        if not self.exhaustive:
            return DenseScores(np.zeros(0, np.int64), np.zeros(0, np.float32))
        cosines = self.cosines_all(query)
        k = min(k, cosines.size)
        if k <= 0:
            return DenseScores(np.zeros(0, np.int64), np.zeros(0, np.float32))
        ids, best = top_k(np.arange(cosines.size, dtype=np.int64), cosines, k)  # ties at the cut: lower ids
        return DenseScores(ids, best)

    def cosines_all(self, query: np.ndarray) -> np.ndarray:
        query = np.asarray(query, dtype=np.float32)
        if self.exhaustive:
            return self.matrix @ query
        out = np.empty(len(self), dtype=np.float32)
        step = 65536  # float16 has no BLAS: convert a slice at a time
        for lo in range(0, len(self), step):
            out[lo : lo + step] = self.matrix[lo : lo + step].astype(np.float32) @ query
        return out

    def cosines(self, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
        """The cosine of each of ``ids`` to ``query``."""
        ids = np.asarray(ids, dtype=np.int64)
        query = np.asarray(query, dtype=np.float32)
        if self.exhaustive:
            return self.matrix[ids] @ query
        order = np.argsort(ids, kind="stable")  # read the file front to back
        out = np.empty(ids.size, dtype=np.float32)
        out[order] = self._rows(ids[order]).astype(np.float32) @ query
        return out

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        if self._fd is None:
            return np.asarray(self.matrix[ids])
        dimension = int(self.matrix.shape[1])
        row_bytes = dimension * 2
        data = pread_rows(self._fd, row_bytes, [i * row_bytes for i in ids.tolist()])
        return data.view(np.float16).reshape(ids.size, dimension)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]


def vectors_folder(cache_dir: Path, index_fingerprint: str, model_id: str) -> Path:
    safe_model = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id)
    return Path(cache_dir) / f"vectors-{index_fingerprint}-{safe_model}"


class VectorBuild:
    """The embeddings of one index: loaded from the cache, or encoded (resumably) by :meth:`run`.

    ``texts`` gives sentence ``i``'s text; ``total`` is the number of sentences. Progress (``done``,
    ``total``, ``error``) may be read from any thread while :meth:`run` works in another."""

    def __init__(
        self,
        encoder: Encoder,
        texts: Callable[[int], str],
        total: int,
        index_fingerprint: str,
        cache_dir: Path | None,
        *,
        batch_size: int = 64,
        titles: Sequence[str] = (),
    ) -> None:
        self.encoder = encoder
        self._texts = texts
        self._title_texts = list(titles)
        self._titles: np.ndarray | None = None  # float32, one row per document, once made
        self.total = total
        self._folder = vectors_folder(cache_dir, index_fingerprint, encoder.model_id) if cache_dir else None
        self._batch_size = batch_size
        self._vectors: SentenceVectors | None = None
        self._rows: list[np.ndarray] = []  # without a cache folder, the chunks encoded so far
        self.done = 0
        self.error: str | None = None
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._load_finished()

    @property
    def vectors(self) -> SentenceVectors | None:
        """The complete embeddings, or None while they are being built (or could not be)."""
        return self._vectors

    @property
    def titles(self) -> np.ndarray | None:
        """The documents' title embeddings (float32, one row per document), or None until made."""
        return self._titles

    @property
    def complete(self) -> bool:
        return self._vectors is not None and self._titles is not None

    @property
    def missing(self) -> int:
        """Sentences still to be embedded."""
        return 0 if self.complete else self.total - self.done

    def run(self, progress: Callable[[int, int], None] | None = None) -> SentenceVectors | None:
        """Encode what is missing, store it, and return the vectors (None, with ``error`` set, on failure).
        Safe to call again: a second call returns at once."""
        with self._lock:
            if self.complete:
                return self._vectors
            started = time.perf_counter()
            try:
                if self._vectors is None:
                    self._encode_missing(progress)
                if self._vectors is not None and self._titles is None:
                    self._encode_titles()
            except Exception as error:  # a build in the background must say what went wrong, not vanish
                self.error = f"{type(error).__name__}: {error}"
                log.exception("building sentence embeddings failed; searching with BM25 alone")
                return None
            self.seconds += time.perf_counter() - started
            return self._vectors

    def stop(self) -> None:
        """Ask a :meth:`run` in another thread to stop after the chunk it is encoding (a second or so); what
        it made is kept on disk, and the next run goes on from there. A process must stop the build and
        wait for its thread before exiting: onnxruntime aborts the process when its threads are torn
        down mid-run."""
        self._stopping.set()

    # -- internals --------------------------------------------------------------------------------------

    def _load_finished(self) -> None:
        folder = self._folder
        if folder is None or not (folder / "meta.json").is_file():
            if folder is not None and (folder / "vectors.partial").is_file():
                self.done = self._partial_rows(folder / "vectors.partial")
            return
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("its meta.json is not an object")
            if meta.get("format") != _FORMAT or meta.get("rows") != self.total:
                raise ValueError("it was made for another index")
            dimension = int(meta["dimension"])
            raw = np.memmap(folder / "vectors.f16", dtype=np.float16, mode="r")
            if raw.size != self.total * dimension:
                raise ValueError(f"it holds {raw.size} numbers, not {self.total} x {dimension}")
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
            log.warning("embedding cache %s is unusable (%s); encoding again", folder, error)
            return
        self._vectors = SentenceVectors(_in_memory(raw.reshape(self.total, dimension)), self.encoder.model_id)
        self.done = self.total
        titles = folder / "titles.f16"
        if titles.is_file():
            rows = np.fromfile(titles, dtype=np.float16)
            if rows.size == len(self._title_texts) * dimension:
                self._titles = rows.reshape(-1, dimension).astype(np.float32)

    def _encode_titles(self) -> None:
        dimension = self.encoder.dimension
        if self._title_texts:
            rows = self.encoder.encode(self._title_texts, batch_size=self._batch_size).astype(np.float16)
        else:
            rows = np.zeros((0, dimension), np.float16)
        if self._folder is not None:
            temporary = self._folder / "titles.f16.tmp"
            temporary.write_bytes(rows.tobytes())
            os.replace(temporary, self._folder / "titles.f16")
        self._titles = rows.reshape(-1, dimension).astype(np.float32)

    def _partial_rows(self, path: Path) -> int:
        row_bytes = self.encoder.dimension * 2
        return min(path.stat().st_size // row_bytes, self.total)

    def _encode_missing(self, progress: Callable[[int, int], None] | None) -> None:
        folder = self._folder
        partial: Path | None = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / "vectors.partial"
            self.done = self._partial_rows(partial) if partial.exists() else 0
            if partial.exists():
                # Drop a torn last row (a crash mid-write) before appending.
                os.truncate(partial, self.done * self.encoder.dimension * 2)
        else:
            self.done = sum(len(r) for r in self._rows)
        if progress is not None:
            progress(self.done, self.total)
        while self.done < self.total:
            if self._stopping.is_set():
                return
            hi = min(self.done + _CHUNK, self.total)
            texts = [self._texts(i) for i in range(self.done, hi)]
            chunk = self.encoder.encode(texts, batch_size=self._batch_size).astype(np.float16)
            if partial is not None:
                with open(partial, "ab") as out:
                    out.write(chunk.tobytes())
            else:
                self._rows.append(chunk)
            self.done = hi
            if progress is not None:
                progress(self.done, self.total)
        dimension = self.encoder.dimension
        if partial is not None and folder is not None:
            with open(partial, "rb+") as out:
                os.fsync(out.fileno())
            os.replace(partial, folder / "vectors.f16")
            meta = {"format": _FORMAT, "rows": self.total, "dimension": dimension,
                    "model": self.encoder.model_id}
            tmp = folder / "meta.json.tmp"
            tmp.write_text(json.dumps(meta), encoding="utf-8")
            os.replace(tmp, folder / "meta.json")
            raw = np.memmap(folder / "vectors.f16", dtype=np.float16, mode="r").reshape(self.total, dimension)
        else:
            raw = np.concatenate(self._rows) if self._rows else np.zeros((0, dimension), np.float16)
            self._rows = []
        self._vectors = SentenceVectors(_in_memory(raw), self.encoder.model_id)


def _in_memory(raw: np.ndarray) -> np.ndarray:
    """float32 in memory for a full scan (BLAS), unless that would be large: then the float16 rows on disk."""
    if raw.size * 4 <= EXHAUSTIVE_BYTES:
        return np.ascontiguousarray(raw, dtype=np.float32)
    return raw

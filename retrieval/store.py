"""Sentence texts and their places (document, paragraph, position), kept as flat arrays.

A million sentences as Python strings would cost several hundred MiB and seconds to load; as one UTF-8 blob
plus offsets they can be memory-mapped from the cache and decoded only when a sentence is shown.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

UNKNOWN_DATE = -1  # in ``doc_dates``: the document gives no (valid) date


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """What a reply needs to know about a document; its text lives in the sentence blob."""

    name: str
    title: str
    date: dt.date | None
    url: str | None
    first_sentence: int
    n_sentences: int

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "date": self.date.isoformat() if self.date else None,
            "url": self.url,
            "first_sentence": self.first_sentence,
            "n_sentences": self.n_sentences,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> DocumentInfo:
        date = data.get("date")
        return cls(
            name=str(data["name"]),
            title=str(data["title"]),
            date=dt.date.fromisoformat(str(date)) if date else None,
            url=str(data["url"]) if data.get("url") else None,
            first_sentence=int(data["first_sentence"]),  # type: ignore[call-overload]
            n_sentences=int(data["n_sentences"]),  # type: ignore[call-overload]
        )


class TextBlob:
    """The sentences' UTF-8 texts back to back: in memory after a build, or read from the cache on demand.

    From the cache it reads with ``pread`` rather than through a memory map: a map pulls in 64 KiB around
    every quote read, which over a few thousand answers makes most of the file resident.
    """

    def __init__(self, data: bytes | None = None, *, path: Path | None = None, start: int = 0, size: int = 0):
        self._data = data
        self._fd = os.open(path, os.O_RDONLY) if path is not None else None
        self._start = start
        self.size = len(data) if data is not None else size

    @classmethod
    def from_npy(cls, path: Path) -> TextBlob:
        """The bytes of a 1-D uint8 ``.npy`` file, read where they lie (the header says where)."""
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        if mapped.dtype != np.uint8 or mapped.ndim != 1:
            raise ValueError(f"{path.name} is not a byte array")
        start, size = int(mapped.offset), int(mapped.shape[0])
        del mapped
        if path.stat().st_size < start + size:
            raise ValueError(f"{path.name} is truncated")
        return cls(path=path, start=start, size=size)

    def read(self, start: int, end: int) -> bytes:
        if self._data is not None:
            return self._data[start:end]
        assert self._fd is not None
        return os.pread(self._fd, end - start, self._start + start)

    def all(self) -> bytes:
        return self.read(0, self.size)

    def as_array(self) -> np.ndarray:
        return np.frombuffer(self.all(), dtype=np.uint8)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]


class JoinedBlob:
    """Several segments' blobs read as one: byte ``starts[i]`` of the whole is byte 0 of ``parts[i]``.

    A composed index keeps each segment's text where it lies (in its cache entry) rather than copying it
    into one new blob; a read inside one part costs what it costs there."""

    def __init__(self, parts: list[TextBlob]) -> None:
        self.parts = parts
        self.starts = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([p.size for p in parts], out=self.starts[1:])
        self.size = int(self.starts[-1])
        self._starts = self.starts.tolist()  # bisect on a list: a quote is read in ~1 us, not ~8

    def read(self, start: int, end: int) -> bytes:
        starts = self._starts
        first = max(bisect.bisect_right(starts, start) - 1, 0)
        if first < len(self.parts) and end <= starts[first + 1]:  # inside one part: every sentence is
            return self.parts[first].read(start - starts[first], end - starts[first])
        pieces = []
        for i in range(first, len(self.parts)):
            lo, hi = starts[i], starts[i + 1]
            if lo >= end:
                break
            pieces.append(self.parts[i].read(max(start, lo) - lo, min(end, hi) - lo))
        return b"".join(pieces)

    def all(self) -> bytes:
        return self.read(0, self.size)

    def as_array(self) -> np.ndarray:
        return np.frombuffer(self.all(), dtype=np.uint8)


Blob = TextBlob | JoinedBlob


class SentenceStore:
    """Sentences in document order: sentence ``i`` of document ``d`` has id ``d.first_sentence + i``."""

    def __init__(
        self,
        documents: list[DocumentInfo],
        blob: Blob,
        offsets: np.ndarray,
        sentence_doc: np.ndarray,
        sentence_paragraph: np.ndarray,
        duplicate_group: np.ndarray,
        duplicate_count: np.ndarray,
        text_hash: np.ndarray | None = None,
        ends: np.ndarray | None = None,
    ) -> None:
        """``ends`` (byte offsets where each sentence's text ends) is given when the texts do not lie back
        to back in ``blob`` (a composed index leaves out the bytes of documents removed since); without
        it, a sentence ends where the next begins."""
        self.documents = documents
        self.blob = blob
        self.offsets = np.asarray(offsets, dtype=np.int64)  # n + 1 byte offsets into blob; read per quote
        self.ends = self.offsets[1:] if ends is None else np.asarray(ends, dtype=np.int64)
        self.text_hash = text_hash  # uint64 per sentence (see ``build.text_hash``), when known
        # Where hashes computed later are kept (the cache sets it for an entry written without them).
        self.keep_text_hash: Callable[[np.ndarray], None] | None = None
        self.sentence_doc = sentence_doc  # int32 per sentence
        self.sentence_paragraph = sentence_paragraph  # int32 per sentence
        self.duplicate_group = duplicate_group  # int32 per sentence: equal texts share a group
        self.duplicate_count = duplicate_count  # int32 per sentence: how many other sentences say the same
        self.doc_dates = np.array(
            [d.date.toordinal() if d.date else UNKNOWN_DATE for d in documents], dtype=np.int64
        )

    def __len__(self) -> int:
        return int(self.sentence_doc.shape[0])

    def text(self, sentence_id: int) -> str:
        start, end = int(self.offsets[sentence_id]), int(self.ends[sentence_id])
        return self.blob.read(start, end).decode("utf-8")

    def document_of(self, sentence_id: int) -> DocumentInfo:
        return self.documents[int(self.sentence_doc[sentence_id])]

    def position(self, sentence_id: int) -> int:
        return sentence_id - self.document_of(sentence_id).first_sentence

    def duplicates(self, sentence_id: int) -> int:
        return int(self.duplicate_count[sentence_id])

    def sentence_dates(self, sentence_ids: np.ndarray) -> np.ndarray:
        """Day ordinals of the sentences' documents (``UNKNOWN_DATE`` where unknown)."""
        return self.doc_dates[self.sentence_doc[sentence_ids]]

    def sentence_at_byte(self, byte_offsets: np.ndarray) -> np.ndarray:
        """The sentence holding each byte of the blob; -1 for a byte of no sentence (a removed document's)."""
        found = np.searchsorted(self.offsets[:-1], byte_offsets, side="right") - 1
        inside = found >= 0
        inside[inside] = np.asarray(byte_offsets)[inside] < self.ends[found[inside]]
        return np.where(inside, found, -1)

"""Sentence texts and their places (document, paragraph, position), kept as flat arrays.

A million sentences as Python strings would cost several hundred MiB and seconds to load; as one UTF-8 blob
plus offsets they can be memory-mapped from the cache and decoded only when a sentence is shown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

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


class SentenceStore:
    """Sentences in document order: sentence ``i`` of document ``d`` has id ``d.first_sentence + i``."""

    def __init__(
        self,
        documents: list[DocumentInfo],
        blob: np.ndarray,
        offsets: np.ndarray,
        sentence_doc: np.ndarray,
        sentence_paragraph: np.ndarray,
        duplicate_group: np.ndarray,
    ) -> None:
        self.documents = documents
        self.blob = blob  # uint8, the UTF-8 texts back to back
        self.offsets = offsets  # int64, n + 1 byte offsets into blob
        self.sentence_doc = sentence_doc  # int32 per sentence
        self.sentence_paragraph = sentence_paragraph  # int32 per sentence
        self.duplicate_group = duplicate_group  # int32 per sentence: equal texts share a group
        self.group_size = np.bincount(duplicate_group) if duplicate_group.size else np.zeros(0, np.int64)
        self.doc_dates = np.array(
            [d.date.toordinal() if d.date else UNKNOWN_DATE for d in documents], dtype=np.int64
        )

    def __len__(self) -> int:
        return int(self.sentence_doc.shape[0])

    def text(self, sentence_id: int) -> str:
        start, end = int(self.offsets[sentence_id]), int(self.offsets[sentence_id + 1])
        return self.blob[start:end].tobytes().decode("utf-8")

    def document_of(self, sentence_id: int) -> DocumentInfo:
        return self.documents[int(self.sentence_doc[sentence_id])]

    def position(self, sentence_id: int) -> int:
        return sentence_id - self.document_of(sentence_id).first_sentence

    def duplicates(self, sentence_id: int) -> int:
        return int(self.group_size[self.duplicate_group[sentence_id]]) - 1

    def sentence_dates(self, sentence_ids: np.ndarray) -> np.ndarray:
        """Day ordinals of the sentences' documents (``UNKNOWN_DATE`` where unknown)."""
        return self.doc_dates[self.sentence_doc[sentence_ids]]

    def sentence_at_byte(self, byte_offsets: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.offsets, byte_offsets, side="right") - 1

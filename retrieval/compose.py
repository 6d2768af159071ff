"""The compose stage of a segmented index: several segments -> one :class:`SearchIndex`.

A segment is an ordinary index of a batch of documents, cached on its own and never changed
(``retrieval.cache``); the live index (``retrieval.live``) is the composition of its segments, less the
documents removed or replaced since a segment was written. Composing lays the segments end to end, leaves
the removed documents out and takes BM25's statistics (sentence count, document frequencies, average
length, the idf floor) over what is left, so a composed index is exactly what a one-shot build of the same
documents in the same order gives: the same postings, scores and pages. It copies the postings (one pass,
~1 s per ten million) but no text: each sentence's text stays in its segment's blob, and its embedding in
its segment's vectors.

Each sentence keeps an address that does not depend on the composition: its segment's fingerprint and its
id inside that segment (:meth:`Composition.origin`, :meth:`Composition.locate`), which is what a button
made before an update carries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from retrieval.build import duplicate_groups, text_hash
from retrieval.index import InvertedIndex
from retrieval.semantic import DenseScores, SentenceVectors, VectorBuild
from retrieval.store import DocumentInfo, JoinedBlob, SentenceStore

if TYPE_CHECKING:
    from retrieval.search import IndexSettings, SearchIndex


@dataclass(frozen=True, slots=True)
class Part:
    """One segment of a composition, and the names of its documents that are no longer live."""

    index: SearchIndex
    removed: frozenset[str] = frozenset()


class Composition:
    """Where each sentence of a composed index comes from, both ways."""

    def __init__(
        self, parts: Sequence[Part], local_to_global: Sequence[np.ndarray], n_sentences: int
    ) -> None:
        self.parts = tuple(parts)
        self.local_to_global = tuple(local_to_global)  # int64 per segment sentence; -1: removed
        self._by_fingerprint = {p.index.fingerprint: i for i, p in enumerate(self.parts)}
        self.part_of = np.zeros(n_sentences, dtype=np.int32)
        self.local_of = np.zeros(n_sentences, dtype=np.int64)
        for i, mapping in enumerate(self.local_to_global):
            live = np.flatnonzero(mapping >= 0)
            self.part_of[mapping[live]] = i
            self.local_of[mapping[live]] = live

    def origin(self, sentence_id: int) -> tuple[str, int]:
        """(the segment's fingerprint, the sentence's id inside it)."""
        part = int(self.part_of[sentence_id])
        return self.parts[part].index.fingerprint, int(self.local_of[sentence_id])

    def locate(self, segment: str, local_id: int) -> int | None:
        """The id in this composition of sentence ``local_id`` of ``segment``; None if it is not live."""
        part = self._by_fingerprint.get(segment)
        if part is None:
            return None
        mapping = self.local_to_global[part]
        if not 0 <= local_id < mapping.size or mapping[local_id] < 0:
            return None
        return int(mapping[local_id])


def composed_fingerprint(settings: IndexSettings, parts: Sequence[Part]) -> str:
    digest = hashlib.sha256(settings.fingerprint.encode())
    for part in parts:
        digest.update(b"\0" + part.index.fingerprint.encode())
        for name in sorted(part.removed):
            digest.update(b"\1" + name.encode("utf-8"))
    return digest.hexdigest()[:16]


def compose(parts: Sequence[Part], settings: IndexSettings) -> SearchIndex:
    """One index of ``parts`` in order, their removed documents left out. A single part with nothing
    removed is returned as it is (its arrays stay memory-mapped from the cache)."""
    from retrieval.search import SearchIndex

    if not parts:
        raise ValueError("an index needs at least one segment")
    if len(parts) == 1 and not parts[0].removed:
        return parts[0].index
    stores = [p.index._store for p in parts]
    inverted = [p.index._inverted for p in parts]
    live = [_live_sentences(store, part.removed) for store, part in zip(stores, parts, strict=True)]

    local_to_global: list[np.ndarray] = []
    start = 0
    for store, keep in zip(stores, live, strict=True):
        mapping = np.full(len(store), -1, dtype=np.int64)
        count = int(keep.sum()) if keep is not None else len(store)
        if keep is None:
            mapping[:] = np.arange(start, start + count)
        else:
            mapping[keep] = np.arange(start, start + count)
        local_to_global.append(mapping)
        start += count
    store = _compose_store(stores, parts, live)
    postings = _compose_postings(inverted, live, local_to_global, settings)
    index = SearchIndex(postings, store, settings, fingerprint=composed_fingerprint(settings, parts))
    index.composition = Composition(parts, local_to_global, len(store))
    return index


def _live_sentences(store: SentenceStore, removed: frozenset[str]) -> np.ndarray | None:
    """A bool per sentence of ``store``: whether its document is live (None: all are)."""
    if not removed:
        return None
    dead = np.array([d.name in removed for d in store.documents], dtype=bool)
    if not dead.any():
        return None
    return ~dead[np.asarray(store.sentence_doc)]


def _pick(array: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    array = np.asarray(array)
    return array if keep is None else array[keep]


def _compose_store(
    stores: Sequence[SentenceStore], parts: Sequence[Part], live: Sequence[np.ndarray | None]
) -> SentenceStore:
    documents: list[DocumentInfo] = []
    doc_maps = []
    first = 0
    for store, part in zip(stores, parts, strict=True):
        doc_map = np.full(len(store.documents), -1, dtype=np.int32)
        for i, d in enumerate(store.documents):
            if d.name in part.removed:
                continue
            doc_map[i] = len(documents)
            documents.append(DocumentInfo(d.name, d.title, d.date, d.url, first, d.n_sentences))
            first += d.n_sentences
        doc_maps.append(doc_map)
    blob = JoinedBlob([s.blob for s in stores])
    bases = blob.starts[:-1]
    starts = [
        _pick(s.offsets[:-1], keep) + int(base) for s, keep, base in zip(stores, live, bases, strict=True)
    ]
    ends = [_pick(s.ends, keep) + int(base) for s, keep, base in zip(stores, live, bases, strict=True)]
    offsets = np.concatenate([*starts, [blob.size]]).astype(np.int64)
    hashes = np.concatenate([_pick(_hashes(s), keep) for s, keep in zip(stores, live, strict=True)])
    group, group_size = duplicate_groups(hashes)
    sentence_doc = np.concatenate(
        [
            doc_map[_pick(s.sentence_doc, keep)]
            for s, keep, doc_map in zip(stores, live, doc_maps, strict=True)
        ]
    ).astype(np.int32)
    paragraphs = np.concatenate(
        [_pick(s.sentence_paragraph, keep) for s, keep in zip(stores, live, strict=True)]
    )
    return SentenceStore(
        documents, blob, offsets, sentence_doc, paragraphs.astype(np.int32), group,
        (group_size[group] - 1).astype(np.int32), hashes, ends=np.concatenate(ends).astype(np.int64),
    )  # fmt: skip


def _hashes(store: SentenceStore) -> np.ndarray:
    """The store's text hashes; an entry written before they were kept has them computed once, here."""
    if store.text_hash is None:
        store.text_hash = np.fromiter(
            (text_hash(store.text(i)) for i in range(len(store))), np.uint64, count=len(store)
        )
    return np.asarray(store.text_hash)


def _compose_postings(
    parts: Sequence[InvertedIndex],
    live: Sequence[np.ndarray | None],
    local_to_global: Sequence[np.ndarray],
    settings: IndexSettings,
) -> InvertedIndex:
    """The postings of every part end to end, per term: sorted by sentence id, since each part's ids are
    above the previous part's. Terms found only in removed documents are left out, as a one-shot build
    would never have seen them (they would change the idf floor)."""
    vocabulary: dict[str, int] = {}
    term_maps: list[np.ndarray] = []
    live_df: list[np.ndarray] = []
    kept_postings: list[np.ndarray | None] = []
    for inverted, keep in zip(parts, live, strict=True):
        n_terms = len(inverted.vocabulary)
        df = np.diff(inverted.indptr)
        if keep is None:
            kept = None
        else:
            kept = keep[np.asarray(inverted.sentence_ids)]
            term_of = np.repeat(np.arange(n_terms, dtype=np.int64), df)
            df = np.bincount(term_of[kept], minlength=n_terms)
        term_maps.append(np.fromiter(
            (vocabulary.setdefault(t, len(vocabulary)) if n else -1
             for t, n in zip(inverted.vocabulary, df.tolist(), strict=True)),
            dtype=np.int64, count=n_terms,
        ))  # fmt: skip
        live_df.append(df)
        kept_postings.append(kept)
    n_terms = len(vocabulary)
    df_total = np.zeros(n_terms, dtype=np.int64)
    for term_map, df in zip(term_maps, live_df, strict=True):
        present = term_map >= 0
        df_total += np.bincount(term_map[present], weights=df[present], minlength=n_terms).astype(np.int64)
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(df_total, out=indptr[1:])
    n_postings = int(indptr[-1])
    tf_dtype = np.result_type(*[p.tf.dtype for p in parts])
    sentence_ids = np.empty(n_postings, dtype=np.int32)
    tf = np.empty(n_postings, dtype=tf_dtype)
    fill = indptr[:-1].copy()  # where each term's next postings go
    for inverted, kept, term_map, df, mapping in zip(
        parts, kept_postings, term_maps, live_df, local_to_global, strict=True
    ):
        ids = _pick(inverted.sentence_ids, kept)
        counts = _pick(inverted.tf, kept)
        if not ids.size:
            continue
        local_indptr = np.zeros(df.size + 1, dtype=np.int64)
        np.cumsum(df, out=local_indptr[1:])
        present = term_map >= 0
        shift = np.zeros(df.size, dtype=np.int64)
        shift[present] = fill[term_map[present]] - local_indptr[:-1][present]
        destination = np.repeat(shift, df) + np.arange(ids.size, dtype=np.int64)
        sentence_ids[destination] = mapping[ids]
        tf[destination] = counts
        fill[term_map[present]] += df[present]
    lengths = np.concatenate([_pick(p.lengths, keep) for p, keep in zip(parts, live, strict=True)])
    return InvertedIndex(
        list(vocabulary), indptr, sentence_ids, tf, lengths.astype(np.int32), settings.ranking
    )


# -- meaning: each segment's embeddings, read through the composition ---------------------------------------


class ComposedVectors:
    """The embeddings of a composed index: each segment's own, its removed sentences left out."""

    def __init__(self, parts: Sequence[SentenceVectors], composition: Composition) -> None:
        self._parts = list(parts)
        self._composition = composition
        self.model_id = parts[0].model_id if parts else ""
        self.exhaustive = all(p.exhaustive for p in parts)

    def __len__(self) -> int:
        return int(self._composition.part_of.size)

    def nearest(self, query: np.ndarray, k: int) -> DenseScores:
        if not self.exhaustive or k <= 0:
            return DenseScores(np.zeros(0, np.int64), np.zeros(0, np.float32))
        ids, cosines = [], []
        for vectors, mapping in zip(self._parts, self._composition.local_to_global, strict=True):
            best = vectors.nearest(
                query, k + int((mapping < 0).sum())
            )  # enough once removed ones are dropped
            global_ids = mapping[best.ids]
            live = global_ids >= 0
            ids.append(global_ids[live][:k])
            cosines.append(best.cosines[live][:k])
        all_ids, all_cosines = np.concatenate(ids), np.concatenate(cosines)
        order = np.lexsort((all_ids, -all_cosines))[:k]
        return DenseScores(all_ids[order], all_cosines[order])

    def cosines_all(self, query: np.ndarray) -> np.ndarray:
        out = np.zeros(len(self), dtype=np.float32)
        for vectors, mapping in zip(self._parts, self._composition.local_to_global, strict=True):
            live = mapping >= 0
            out[mapping[live]] = vectors.cosines_all(query)[live]
        return out

    def cosines(self, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros(ids.size, dtype=np.float32)
        part_of = self._composition.part_of[ids]
        local = self._composition.local_of[ids]
        for part in np.unique(part_of).tolist():
            chosen = part_of == part
            out[chosen] = self._parts[part].cosines(local[chosen], query)
        return out


class ComposedVectorBuild:
    """A :class:`VectorBuild` over a composed index: the segments' builds, run one after another. A
    segment embedded before (by an earlier composition, or another process) is only loaded."""

    def __init__(self, builds: Sequence[VectorBuild], composition: Composition) -> None:
        self._builds = list(builds)
        self._composition = composition
        self.encoder = builds[0].encoder
        self.total = int(composition.part_of.size)
        self._vectors: ComposedVectors | None = None
        self.seconds = 0.0

    @property
    def done(self) -> int:
        done = sum(b.done for b in self._builds)
        total = sum(b.total for b in self._builds) or 1
        return self.total if self.complete else min(self.total, round(self.total * done / total))

    @property
    def error(self) -> str | None:
        return next((b.error for b in self._builds if b.error), None)

    @property
    def complete(self) -> bool:
        return all(b.complete for b in self._builds)

    @property
    def vectors(self) -> ComposedVectors | None:
        if self._vectors is None and self.complete:
            self._vectors = ComposedVectors([b.vectors for b in self._builds if b.vectors], self._composition)
        return self._vectors

    def run(self, progress: Callable[[int, int], None] | None = None) -> ComposedVectors | None:
        for build in self._builds:
            if not build.complete:
                build.run(None if progress is None else lambda _d, _t: progress(self.done, self.total))
                self.seconds += build.seconds
            if not build.complete:
                return None  # stopped, or failed (its error says why)
        return self.vectors

    def stop(self) -> None:
        for build in self._builds:
            build.stop()

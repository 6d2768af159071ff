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
import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.build import text_hash
from retrieval.index import InvertedIndex
from retrieval.semantic import _FORMAT as VECTORS_FORMAT
from retrieval.semantic import DenseScores, SentenceVectors, VectorBuild, vectors_folder
from retrieval.store import DocumentInfo, JoinedBlob, SentenceStore, TextBlob

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
        self,
        parts: Sequence[Part],
        local_to_global: Sequence[np.ndarray],
        n_sentences: int,
        documents: Sequence[np.ndarray] = (),
    ) -> None:
        self.parts = tuple(parts)
        self.documents = tuple(documents)  # int32 per segment document: its number here, -1 if removed
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
    starts: list[int] = []  # each part's first sentence here
    start = 0
    for store, keep in zip(stores, live, strict=True):
        starts.append(start)
        mapping = np.full(len(store), -1, dtype=np.int64)
        count = int(keep.sum()) if keep is not None else len(store)
        if keep is None:
            mapping[:] = np.arange(start, start + count)
        else:
            mapping[keep] = np.arange(start, start + count)
        local_to_global.append(mapping)
        start += count
    store, doc_maps = _compose_store(stores, parts, live)
    postings = _compose_postings(inverted, live, [p.removed for p in parts], starts, settings)
    index = SearchIndex(postings, store, settings, fingerprint=composed_fingerprint(settings, parts))
    index.composition = Composition(parts, local_to_global, len(store), doc_maps)
    index._title_terms = [
        terms
        for part, doc_map in zip(parts, doc_maps, strict=True)
        for terms, number in zip(part.index.title_terms(), doc_map.tolist(), strict=True)
        if number >= 0
    ]
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
) -> tuple[SentenceStore, list[np.ndarray]]:
    documents: list[DocumentInfo] = []
    doc_maps = []
    first = 0
    for store, part in zip(stores, parts, strict=True):
        doc_map = np.full(len(store.documents), -1, dtype=np.int32)
        for i, d in enumerate(store.documents):
            if d.name in part.removed:
                continue
            doc_map[i] = len(documents)
            # The segment's own record where it has not moved: one object fewer per document and update
            # for the collector to walk (a million-sentence corpus has thousands of documents).
            if d.first_sentence != first:
                d = DocumentInfo(d.name, d.title, d.date, d.url, first, d.n_sentences)
            documents.append(d)
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
    group, duplicates = _duplicate_groups(stores, live)
    sentence_doc = np.concatenate(
        [
            doc_map[_pick(s.sentence_doc, keep)]
            for s, keep, doc_map in zip(stores, live, doc_maps, strict=True)
        ]
    ).astype(np.int32)
    paragraphs = np.concatenate(
        [_pick(s.sentence_paragraph, keep) for s, keep in zip(stores, live, strict=True)]
    )
    store = SentenceStore(
        documents, blob, offsets, sentence_doc, paragraphs.astype(np.int32), group, duplicates, hashes,
        ends=np.concatenate(ends).astype(np.int64),
    )  # fmt: skip
    return store, doc_maps


class _HashGroups:
    """One segment's distinct text hashes (sorted) and each sentence's place among them: worked out once
    per segment and kept with it, so that composing a large segment with a few new ones groups the new
    sentences' hashes only (sorting the million hashes of a large corpus again took ~0.2 s an update)."""

    def __init__(self, hashes: np.ndarray) -> None:
        self.distinct, inverse = np.unique(hashes, return_inverse=True)
        self.label = inverse.astype(np.int32).reshape(-1)


def _hash_groups(store: SentenceStore) -> _HashGroups:
    groups = getattr(store, "_hash_groups", None)
    if groups is None:
        groups = _HashGroups(_hashes(store))
        store._hash_groups = groups  # type: ignore[attr-defined]
    return groups


def _duplicate_groups(
    stores: Sequence[SentenceStore], live: Sequence[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Each live sentence's group of equal texts (int32; equal hashes, equal groups) and how many other
    live sentences share its text. The largest segment's groups are its own; a hash of another segment
    takes the largest's group if the largest has it, else a new one shared with its equals."""
    largest = max(range(len(stores)), key=lambda i: len(stores[i]))
    base = _hash_groups(stores[largest])
    labels: list[np.ndarray] = []
    others: list[np.ndarray] = []  # the distinct hashes of the other segments that the largest lacks
    placed: list[tuple[np.ndarray, np.ndarray]] = []  # per other segment: found in the largest, where
    for i, store in enumerate(stores):
        if i == largest:
            continue
        own = _hash_groups(store)
        where = np.minimum(np.searchsorted(base.distinct, own.distinct), max(base.distinct.size - 1, 0))
        found = base.distinct[where] == own.distinct if base.distinct.size else np.zeros(0, bool)
        placed.append((found, where))
        others.append(own.distinct[~found])
    new_distinct = np.unique(np.concatenate(others)) if others else np.zeros(0, np.uint64)
    n_groups = base.distinct.size + new_distinct.size
    extra = iter(placed)
    for i, (store, keep) in enumerate(zip(stores, live, strict=True)):
        own = _hash_groups(store)
        if i == largest:
            labels.append(_pick(own.label, keep))
            continue
        found, where = next(extra)
        of_distinct = np.where(
            found, where, base.distinct.size + np.searchsorted(new_distinct, own.distinct)
        ).astype(np.int32)
        labels.append(_pick(of_distinct[own.label], keep))
    group = np.concatenate(labels).astype(np.int32)
    sizes = np.bincount(group, minlength=n_groups)
    return group, (sizes[group] - 1).astype(np.int32)


def _hashes(store: SentenceStore) -> np.ndarray:
    """The store's text hashes; an entry written before they were kept has them computed once, here."""
    if store.text_hash is None:
        store.text_hash = np.fromiter(
            (text_hash(store.text(i)) for i in range(len(store))), np.uint64, count=len(store)
        )
        if store.keep_text_hash is not None:
            store.keep_text_hash(store.text_hash)
    return np.asarray(store.text_hash)


class _LivePostings:
    """One segment's postings less those of its removed documents, its sentences numbered without them:
    worked out once per set of removed documents and kept with the segment, since every update composes
    the large segment again (the renumbering alone is ~0.4 s per ten million postings)."""

    def __init__(self, inverted: InvertedIndex, keep: np.ndarray | None, removed: frozenset[str]) -> None:
        self.removed = removed
        df = np.diff(inverted.indptr)
        if keep is None:
            self.df, self.ids, self.tf = df, np.asarray(inverted.sentence_ids), np.asarray(inverted.tf)
            return
        kept = keep[np.asarray(inverted.sentence_ids)]
        dropped = np.flatnonzero(~kept)
        if dropped.size:  # the terms of the removed postings, found by where they lie in the CSR
            term_of = np.searchsorted(inverted.indptr, dropped, side="right") - 1
            df = df - np.bincount(term_of, minlength=df.size)
        renumbered = (np.cumsum(keep, dtype=np.int64) - 1).astype(np.int32)
        self.df = df
        self.ids = renumbered[np.asarray(inverted.sentence_ids)[kept]]
        self.tf = np.asarray(inverted.tf)[kept]


def _live_postings(
    inverted: InvertedIndex, keep: np.ndarray | None, removed: frozenset[str]
) -> _LivePostings:
    if keep is None:
        return _LivePostings(inverted, None, frozenset())
    cached = getattr(inverted, "_live_postings", None)
    if cached is None or cached.removed != removed:
        cached = _LivePostings(inverted, keep, removed)
        inverted._live_postings = cached  # type: ignore[attr-defined]
    return cached


def _compose_postings(
    parts: Sequence[InvertedIndex],
    live: Sequence[np.ndarray | None],
    removed: Sequence[frozenset[str]],
    starts: Sequence[int],
    settings: IndexSettings,
) -> InvertedIndex:
    """The postings of every part end to end, per term: sorted by sentence id, since each part's ids are
    above the previous part's (part i's live sentences are numbered from ``starts[i]``). Terms found
    only in removed documents are left out, as a one-shot build would never have seen them (they would
    change the idf floor).

    The largest part (usually the one merged from all the others) is copied in one masked pass into the
    places the other parts leave free; only the others' postings are placed one by one."""
    lives = [_live_postings(p, keep, r) for p, keep, r in zip(parts, live, removed, strict=True)]
    live_df = [lp.df for lp in lives]
    # The largest part's terms come first, in its own order, so that its postings (in that order) fill
    # the places the others leave free, term after term.
    largest = max(range(len(parts)), key=lambda i: parts[i].sentence_ids.shape[0])
    vocabulary: dict[str, int] = {}
    term_maps: list[np.ndarray] = [np.zeros(0, np.int64)] * len(parts)
    for i in [largest, *(j for j in range(len(parts)) if j != largest)]:
        term_maps[i] = _term_map(vocabulary, parts[i], live_df[i])
    n_terms = len(vocabulary)
    df_total = np.zeros(n_terms, dtype=np.int64)
    for term_map, df in zip(term_maps, live_df, strict=True):
        present = term_map >= 0
        np.add.at(df_total, term_map[present], df[present])
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(df_total, out=indptr[1:])
    n_postings = int(indptr[-1])
    sentence_ids = np.empty(n_postings, dtype=np.int32)
    tf = np.empty(n_postings, dtype=np.result_type(*[p.tf.dtype for p in parts]))
    taken = np.zeros(n_postings, dtype=bool)  # places filled by the parts other than the largest
    fill = indptr[:-1].copy()  # where each term's next postings go
    for i, (lp, term_map, df, start) in enumerate(zip(lives, term_maps, live_df, starts, strict=True)):
        present = term_map >= 0
        if i != largest and df.sum():
            local_indptr = np.zeros(df.size + 1, dtype=np.int64)
            np.cumsum(df, out=local_indptr[1:])
            shift = np.zeros(df.size, dtype=np.int64)
            shift[present] = fill[term_map[present]] - local_indptr[:-1][present]
            destination = np.repeat(shift, df) + np.arange(lp.ids.size, dtype=np.int64)
            sentence_ids[destination] = lp.ids + start
            tf[destination] = lp.tf
            taken[destination] = True
        fill[term_map[present]] += df[present]
    free = ~taken
    big = lives[largest]
    start = int(starts[largest])
    sentence_ids[free] = big.ids + start if start else big.ids
    tf[free] = big.tf
    lengths = np.concatenate([_pick(p.lengths, keep) for p, keep in zip(parts, live, strict=True)])
    return InvertedIndex(
        list(vocabulary), indptr, sentence_ids, tf, lengths.astype(np.int32), settings.ranking,
        term_ids=vocabulary,
    )  # fmt: skip


def _term_map(vocabulary: dict[str, int], inverted: InvertedIndex, df: np.ndarray) -> np.ndarray:
    """Each of the part's terms' id in ``vocabulary`` (added as they come), -1 for a term with no live
    posting."""
    if not vocabulary and bool((df > 0).all()):
        vocabulary.update(inverted.term_ids)  # the first part as it is: a copy of its dictionary
        return np.arange(len(inverted.vocabulary), dtype=np.int64)
    return np.fromiter(
        (vocabulary.setdefault(t, len(vocabulary)) if n else -1
         for t, n in zip(inverted.vocabulary, df.tolist(), strict=True)),
        dtype=np.int64, count=len(inverted.vocabulary),
    )  # fmt: skip


# -- meaning: each segment's embeddings, read through the composition ---------------------------------------


class ComposedVectors:
    """The embeddings of a composed index: each segment's own, its removed sentences left out. A segment
    still being embedded (one an update just added) has none yet: its sentences are left out of
    :meth:`nearest` and have a NaN cosine, which the fuse stage reads as "not known" (see ``fusion``)."""

    def __init__(self, builds: Sequence[VectorBuild], composition: Composition) -> None:
        self._builds = list(builds)
        self._composition = composition
        self.model_id = builds[0].encoder.model_id if builds else ""
        self._all_parts: list[SentenceVectors] | None = None  # once every segment has its embeddings

    def _parts(self) -> list[SentenceVectors | None]:
        if self._all_parts is not None:  # asked several times a question: a hundred segments add up
            return self._all_parts  # type: ignore[return-value]
        parts = [b.vectors for b in self._builds]
        if all(v is not None for v in parts):  # a build's embeddings, once there, stay
            self._all_parts = parts  # type: ignore[assignment]
        return parts

    @property
    def exhaustive(self) -> bool:
        return all(v is None or v.exhaustive for v in self._parts())

    def __len__(self) -> int:
        return int(self._composition.part_of.size)

    def nearest(self, query: np.ndarray, k: int) -> DenseScores:
        if not self.exhaustive or k <= 0:
            return DenseScores(np.zeros(0, np.int64), np.zeros(0, np.float32))
        ids, cosines = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
        for vectors, mapping in zip(self._parts(), self._composition.local_to_global, strict=True):
            if vectors is None:
                continue
            best = vectors.nearest(query, k + int((mapping < 0).sum()))  # enough once removed are dropped
            global_ids = mapping[best.ids]
            live = global_ids >= 0
            ids.append(global_ids[live][:k])
            cosines.append(best.cosines[live][:k])
        all_ids, all_cosines = np.concatenate(ids), np.concatenate(cosines)
        order = np.lexsort((all_ids, -all_cosines))[:k]
        return DenseScores(all_ids[order], all_cosines[order])

    def cosines_all(self, query: np.ndarray) -> np.ndarray:
        out = np.full(len(self), np.nan, dtype=np.float32)
        for vectors, mapping in zip(self._parts(), self._composition.local_to_global, strict=True):
            if vectors is not None:
                live = mapping >= 0
                out[mapping[live]] = vectors.cosines_all(query)[live]
        return out

    def cosines(self, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.full(ids.size, np.nan, dtype=np.float32)
        part_of = self._composition.part_of[ids]
        local = self._composition.local_of[ids]
        parts = self._parts()
        order = np.argsort(part_of, kind="stable")  # grouped by segment, one read of each
        bounds = [0, *(np.flatnonzero(np.diff(part_of[order])) + 1).tolist(), ids.size]
        for lo, hi in itertools.pairwise(bounds):
            if lo == hi:
                continue
            chosen = order[lo:hi]
            vectors = parts[int(part_of[chosen[0]])]
            if vectors is not None:
                out[chosen] = vectors.cosines(local[chosen], query)
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
        self._titles: np.ndarray | None = None
        self._titles_made: list[bool] = []
        self._titles_complete = False
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
    def missing(self) -> int:
        """Sentences still to be embedded (a segment is embedded whole, its removed sentences too)."""
        return sum(b.missing for b in self._builds)

    @property
    def titles(self) -> np.ndarray | None:
        """The title embeddings of the composed index's documents, in its order (NaN rows for the titles
        of a segment still being embedded); None while no segment has its titles."""
        if self._titles is not None and self._titles_complete:
            return self._titles
        made = [b.titles is not None for b in self._builds]
        if not any(made):
            return None
        if self._titles is None or self._titles_made != made:
            n_documents = sum(int((m >= 0).sum()) for m in self._composition.documents)
            rows = np.full((n_documents, self.encoder.dimension), np.nan, np.float32)
            for build, mapping in zip(self._builds, self._composition.documents, strict=True):
                if build.titles is not None:
                    live = mapping >= 0
                    rows[mapping[live]] = build.titles[live]
            self._titles, self._titles_made = rows, made
            self._titles_complete = all(made)  # titles, once made, stay: no need to look again
        return self._titles

    @property
    def vectors(self) -> ComposedVectors | None:
        """The embeddings, once the segments that hold most sentences have theirs: a segment an update just
        added (being embedded in the background) does not hold meaning up for the rest."""
        if self._vectors is None and self.usable:
            self._vectors = ComposedVectors(self._builds, self._composition)
        return self._vectors

    @property
    def usable(self) -> bool:
        """Whether ranking by meaning can go on: at least half the sentences embedded, by whole segments."""
        embedded = sum(b.total for b in self._builds if b.vectors is not None)
        return embedded > 0 and embedded * 2 >= sum(b.total for b in self._builds)

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


# -- merging: a composed index written as one segment ------------------------------------------------------


def compact(index: SearchIndex) -> SearchIndex:
    """``index`` with its texts in one blob of its own, back to back (the removed documents' bytes gone),
    and no composition: an index that can be cached as one segment. Postings are shared, not copied."""
    from retrieval.search import SearchIndex

    store = index._store
    if index.composition is None and isinstance(store.blob, TextBlob):
        return index
    starts, ends = store.offsets[:-1], store.ends
    # Runs of sentences whose texts lie back to back: whole documents, whole segments; copied a run at once.
    breaks = np.flatnonzero(ends[:-1] != starts[1:]) + 1
    run_starts = np.concatenate([[0], breaks]).astype(np.int64)
    run_ends = np.concatenate([breaks, [len(store)]]).astype(np.int64)
    data = b"".join(
        store.blob.read(int(starts[a]), int(ends[b - 1]))
        for a, b in zip(run_starts, run_ends, strict=True)
        if b > a
    )
    offsets = np.zeros(len(store) + 1, dtype=np.int64)
    np.cumsum(ends - starts, out=offsets[1:])
    compacted = SentenceStore(
        store.documents, TextBlob(data), offsets, store.sentence_doc, store.sentence_paragraph,
        store.duplicate_group, store.duplicate_count, store.text_hash,
    )  # fmt: skip
    return SearchIndex(index._inverted, compacted, index.settings)


MAX_FORWARDS = 32  # segments merged away whose sentence addresses a merged segment still resolves


def merged_forwards(index: SearchIndex) -> dict[str, np.ndarray]:
    """For ``index`` written as one merged segment: each part's fingerprint -> where each of its sentences
    lands (-1 if removed), and so on for the segments the parts themselves were merged from, the most
    recent ``MAX_FORWARDS``."""
    composition = index.composition
    if composition is None:
        return {}
    forwards: dict[str, np.ndarray] = {}
    for part, mapping in zip(composition.parts, composition.local_to_global, strict=True):
        forwards[part.index.fingerprint] = mapping.astype(np.int32)
    for part, mapping in zip(composition.parts, composition.local_to_global, strict=True):
        for older, moved in part.index.forwards.items():
            if len(forwards) >= MAX_FORWARDS:
                break
            moved = np.asarray(moved)
            landed = np.full(moved.size, -1, dtype=np.int32)
            alive = moved >= 0
            landed[alive] = mapping[moved[alive]]
            forwards.setdefault(older, landed)
    return forwards


def write_composed_vectors(index: SearchIndex, fingerprint: str, cache_dir: Path) -> list[Path]:
    """Write, for each model that embedded every segment of ``index``, the embeddings of ``index``'s
    sentences in order as those of the index ``fingerprint`` (its merged form): rows are copied, nothing is
    encoded. Returns the folders written."""
    composition = index.composition
    if composition is None:
        return []
    folders_of = [_vector_folders(cache_dir, p.index.fingerprint) for p in composition.parts]
    written: list[Path] = []
    for model, (_, meta) in folders_of[0].items():
        if not all(model in f for f in folders_of[1:]):
            continue
        target = vectors_folder(cache_dir, fingerprint, str(meta.get("model", model)))
        if (target / "meta.json").exists():
            continue
        dimension = int(meta["dimension"])
        target.mkdir(parents=True, exist_ok=True)
        partial = target / "vectors.partial"
        with open(partial, "wb") as out:
            for folders, mapping in zip(folders_of, composition.local_to_global, strict=True):
                folder = folders[model][0]
                rows = np.memmap(folder / "vectors.f16", dtype=np.float16, mode="r").reshape(-1, dimension)
                live = np.flatnonzero(mapping >= 0)
                for lo in range(0, live.size, 65536):
                    out.write(np.ascontiguousarray(rows[live[lo : lo + 65536]]).tobytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target / "vectors.f16")
        titles = [folders[model][0] / "titles.f16" for folders in folders_of]
        if all(t.is_file() for t in titles):
            rows = np.concatenate([
                np.fromfile(t, dtype=np.float16).reshape(-1, dimension)[mapping >= 0]
                for t, mapping in zip(titles, composition.documents, strict=True)
            ])  # fmt: skip
            (target / "titles.f16.tmp").write_bytes(rows.tobytes())
            os.replace(target / "titles.f16.tmp", target / "titles.f16")
        record = {**meta, "rows": len(index._store)}
        (target / "meta.json.tmp").write_text(json.dumps(record), encoding="utf-8")
        os.replace(target / "meta.json.tmp", target / "meta.json")
        written.append(target)
    return written


def _vector_folders(cache_dir: Path, fingerprint: str) -> dict[str, tuple[Path, dict]]:
    """The complete embedding folders of the index ``fingerprint``, by the model part of their name."""
    found: dict[str, tuple[Path, dict]] = {}
    prefix = f"vectors-{fingerprint}-"
    for folder in Path(cache_dir).glob(prefix + "*"):
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (
            isinstance(meta, dict)
            and meta.get("format") == VECTORS_FORMAT
            and (folder / "vectors.f16").is_file()
        ):
            found[folder.name[len(prefix) :]] = (folder, meta)
    return found

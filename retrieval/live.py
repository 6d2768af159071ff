"""An index that follows its corpus folder: immutable segments, a manifest, and updates while it is searched.

The index of a corpus folder is a set of segments, each the ordinary cached index (``retrieval.cache``) of
a batch of documents, and a manifest, ``live-<key>.json`` in the cache folder, naming the segments that
make up the current index and, for each, the documents removed or replaced since it was written.
:meth:`LiveIndex.refresh` compares the folder with the manifest: new and changed files become one new
segment, removed and replaced documents are masked in theirs, and the composition (``retrieval.compose``)
of the result is swapped in as :attr:`LiveIndex.index`. A search holds the index it started with, so a
swap never disturbs one in flight. :meth:`LiveIndex.merge` folds the segments into one when they grow
many, without analysing a word again (embeddings included).

Crashes: a segment is written whole (temporary folder, then one rename) before the manifest names it, and
the manifest itself is replaced in one rename, so a crash at any point leaves the previous manifest and a
consistent set of segments; a segment the manifest names but that is gone or damaged is simply indexed
again from its files. Several processes (the bot, and ``corpus-bot index`` beside it) share a manifest
under a lock file: each refresh starts from the manifest on disk, so the one that comes second sees what
the first did.

A file is indexed once it has been still for ``settle`` seconds (size and modification time unchanged), so
a document being copied in is not indexed half-written; :attr:`Update.pending` names the files waited for.
While some new files are still being written, the ones already written wait with them (for up to
``gather`` seconds after the first of them was), so that a folder copied in goes live as one segment in one
refresh: read in two, its documents were composed twice over, and the process's memory peaked at 1.52-1.55x
its steady state instead of 1.40x (``benchmarks/bench_growth.py``, 1,000 documents at a million sentences).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.background import lower_this_threads_priority
from retrieval.build import Progress
from retrieval.cache import (
    CacheEntryError,
    EncoderLoad,
    load_encoder,
    prune,
    read_entry,
    write_entry,
    write_forwards,
)
from retrieval.compose import ComposedVectorBuild, Part, compose, merged_forwards
from retrieval.corpus import CorpusError, Document, Problem, list_corpus_files, read_document, require_folder
from retrieval.memory import release_free_memory
from retrieval.search import IndexSettings, SearchIndex
from retrieval.semantic import Encoder, VectorBuild

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "corpus-bot-live-1"
SETTLE_SECONDS = 0.5  # a file unchanged for this long is taken to be written whole
GATHER_SECONDS = 10.0  # how long the ready files of a copy still going on may wait for the rest of it
MAX_SEGMENTS = 10  # more than this, and a merge is due
MAX_REMOVED_SHARE = 0.2  # or this share of the sentences of segments masked away
LOCK_WAIT = 120.0  # seconds a refresh waits for another process's refresh to finish
PRUNE_EVERY = 60.0  # seconds between two clean-ups of the cache folder while segments are only added

FileStat = tuple[int, int]  # (size, modification time in ns)


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment of the live index: its cached index, the files it was made from, and which of its
    documents are no longer live."""

    entry: str | None  # folder name in the cache; None when there is no cache folder
    index: SearchIndex
    files: dict[str, FileStat]  # the documents it holds -> the file as it was when indexed
    removed: frozenset[str] = frozenset()

    @property
    def live_documents(self) -> int:
        return len(self.files) - len(self.removed & self.files.keys())


@dataclass(frozen=True, slots=True)
class Update:
    """What a refresh (or a merge) changed."""

    generation: int
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()  # of the files read by this update
    pending: tuple[str, ...] = ()  # files still being written: the next refresh looks again
    ready_in: float | None = None  # seconds until a refresh can take some of them in
    seconds: float = 0.0
    merged: bool = False

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.merged)

    def summary(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in (("added", self.added), ("changed", self.changed),
                                               ("removed", self.removed)) if v]  # fmt: skip
        if self.merged:
            parts.append("segments merged")
        if self.pending:
            parts.append(f"{len(self.pending)} still being written")
        warnings = sum(1 for p in self.problems if not p.skipped)
        skipped = sum(1 for p in self.problems if p.skipped)
        if skipped:
            parts.append(f"{skipped} skipped")
        if warnings:
            parts.append(f"{warnings} with warnings")
        what = ", ".join(parts) or "nothing changed"
        return f"generation {self.generation}: {what} ({self.seconds:.2f} s)"


@dataclass(slots=True)
class _State:
    generation: int
    segments: list[Segment]
    skipped: dict[str, tuple[FileStat, Problem]] = field(default_factory=dict)  # unreadable files
    problems: list[Problem] = field(default_factory=list)  # of the documents in the index
    written: float | None = None  # time.time() when this generation's manifest was written


class LiveIndex:
    """The index of a corpus folder, kept up to date by :meth:`refresh`. Thread-safe: searches read
    :attr:`index` (one attribute read: they get one whole generation); refreshes and merges are
    serialised among threads and, through a lock file, among processes."""

    def __init__(self, root: Path, settings: IndexSettings, cache_dir: Path | None, state: _State) -> None:
        self.root = root
        self.settings = settings
        self.cache_dir = cache_dir
        self._state = state
        self._lock = threading.RLock()
        self._listeners: list[Callable[[SearchIndex, SearchIndex, Update], None]] = []
        self.opened = Update(state.generation)  # what opening it took (set by ``open``)
        self._rebuild = getattr(self, "_rebuild", False)
        self.documents_added = 0  # counters since start, for the metrics
        self.documents_removed = 0
        self.update_errors = 0
        self.last_error: str | None = None
        self._pruned_at: float = getattr(self, "_pruned_at", float("-inf"))  # monotonic time of the last
        self._pruned_with: set[str] = getattr(self, "_pruned_with", set())  # clean-up, and the entries kept
        self._manifest_seen: tuple[int, int, int, int] | None = getattr(self, "_manifest_seen", None)
        self._encoder: Encoder | None = None
        self._encoder_load: EncoderLoad | None = None  # started by open(meaning_threads=...)
        self._segment_vectors: dict[str, VectorBuild] = {}  # by segment fingerprint: loaded or being built
        self._embedders: list[tuple[threading.Thread, VectorBuild | ComposedVectorBuild]] = []
        self._embedders_lock = threading.Lock()
        self.index = self._compose(state.segments)

    # -- opening ----------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        corpus_path: str | Path,
        settings: IndexSettings | None = None,
        cache_dir: str | Path | None = None,
        *,
        workers: int | None = None,
        progress: Progress | None = None,
        settle: float = 0.0,
        rebuild: bool = False,
        meaning_threads: int | None = None,
    ) -> LiveIndex:
        """The index of ``corpus_path`` as it is now: the manifest's segments (memory-mapped from the
        cache), brought up to date with the folder by indexing only what changed (``rebuild``: all of it,
        as one new segment). Raises CorpusError when the folder is missing or holds no usable document.
        ``meaning_threads``: :meth:`open_vectors` will follow with these threads, so the model is loaded
        meanwhile, beside the opening."""
        started = time.perf_counter()
        settings = settings or IndexSettings()
        encoder_load = None
        if meaning_threads is not None and settings.semantic.enabled:
            encoder_load = EncoderLoad(settings, threads=meaning_threads, cache_dir=cache_dir)
        root = Path(corpus_path)
        require_folder(root)
        cache = Path(cache_dir) if cache_dir is not None else None
        live = cls.__new__(cls)
        live.root, live.settings, live.cache_dir = root, settings, cache
        live._rebuild = rebuild
        live._pruned_at, live._pruned_with = float("-inf"), set()  # the first write cleans up
        live._manifest_seen = None  # (device, inode, size, mtime) of the manifest last read or written
        with live._manifest_lock():
            state = live._read_state() or _State(0, [])
            if rebuild:
                state = _State(state.generation, [])
            state, update = live._bring_up_to_date(state, workers=workers, progress=progress, settle=settle)
        if not state.segments:
            skipped = len(state.skipped)
            detail = f" ({skipped} files skipped)" if skipped else ""
            raise CorpusError(f"corpus folder {root} holds no usable documents{detail}")
        cls.__init__(live, root, settings, cache, state)
        live._encoder_load = encoder_load
        live.opened = _with_seconds(update, time.perf_counter() - started)
        return live

    def summary(self) -> str:
        """One line on the index as opened: its size, the problems, and what opening it took."""
        stats = self.index.stats
        warnings = sum(1 for p in self._state.problems if not p.skipped)
        opened = self.opened
        read = len(opened.added) + len(opened.changed)
        if not read and not opened.removed:
            how = "loaded from cache"
        elif len(self._state.segments) == 1 and not self._state.segments[0].removed and opened.added:
            how = "built"
        else:
            how = f"updated ({_counted(read, 'file')} indexed, {len(opened.removed):,} removed)"
        segments = _counted(len(self._state.segments), "segment")
        return (
            f"{_counted(stats.documents, 'document')}, {_counted(stats.sentences, 'sentence')}, "
            f"{_counted(stats.terms, 'term')}; {_counted(self.skipped, 'file')} skipped, "
            f"{_counted(warnings, 'warning')}; {segments}, generation {self.generation}; "
            f"{how} in {opened.seconds:.2f} s"
        )

    # -- what the bot shows -------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._state.generation

    @property
    def last_update(self) -> float | None:
        """When the current generation was made (``time.time()``), by this process or another; None for
        an index without a cache folder that has not changed since it was opened."""
        return self._state.written

    @property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(self._state.segments)

    @property
    def problems(self) -> tuple[Problem, ...]:
        """The problems of the files in the corpus now: skipped ones and documents loaded with warnings."""
        state = self._state
        return tuple(sorted([*state.problems, *(p for _, p in state.skipped.values())], key=lambda p: p.file))

    @property
    def skipped(self) -> int:
        return len(self._state.skipped)

    @property
    def documents(self) -> int:
        return sum(s.live_documents for s in self._state.segments)

    def on_update(self, listener: Callable[[SearchIndex, SearchIndex, Update], None]) -> None:
        """Call ``listener(old, new, update)`` after each swap (in the refreshing thread), e.g. to attach
        embeddings to the new index; its exceptions are logged, never raised to the refresher."""
        self._listeners.append(listener)

    # -- updating -----------------------------------------------------------------------------------------

    def refresh(
        self, *, settle: float = SETTLE_SECONDS, gather: float = GATHER_SECONDS, workers: int | None = 1
    ) -> Update:
        """Bring the index up to date with the folder (and with a newer manifest another process wrote),
        and swap the result in. Files written less than ``settle`` seconds ago are left for the next call
        (:attr:`Update.pending`), and so are the other new files while the oldest of them is less than
        ``gather`` seconds old (the module's docstring says why). Never raises for a bad file: it is
        reported in :attr:`Update.problems`; an error of the cache folder or the disk is raised, the index
        in use staying as it was.
        A large update is analysed in a worker process (spawned: a script calling this needs the
        ``if __name__ == "__main__":`` guard, or the update is analysed here, with a warning)."""
        with self._lock:
            started = time.perf_counter()
            try:
                with self._manifest_lock():
                    on_disk = self._read_state(newer_than=self._state.generation)
                    state = on_disk or self._state
                    adopted = on_disk is not None
                    # Searches go on meanwhile: a large update is analysed in a worker process.
                    state, update = self._bring_up_to_date(
                        state, workers=workers, settle=settle, gather=gather, background=True
                    )
            except Exception as error:
                self.update_errors += 1
                self.last_error = f"{type(error).__name__}: {error}"
                raise
            if update.changed_anything or adopted:
                self._swap(state, update, started)
            return _with_seconds(update, time.perf_counter() - started)

    def merge(self, *, force: bool = False) -> Update | None:
        """Fold the segments into one (when due, see ``MAX_SEGMENTS``, or ``force``): the removed documents
        are dropped for good and nothing is analysed or embedded again. None when there was nothing to do,
        or when a segment is still being embedded (a merge then would have to embed the whole corpus
        again: it waits for the next call)."""
        with self._lock:
            started = time.perf_counter()
            with self._manifest_lock():
                state = self._read_state(newer_than=self._state.generation) or self._state
                if not (
                    force and (len(state.segments) > 1 or any(s.removed for s in state.segments))
                ) and not (merge_due(state.segments)):
                    return None
                if not self._embeddings_in_step(state.segments):
                    log.info("merge put off: a segment is still being embedded")
                    return None
                merged = self._merged_segment(state.segments)
                new_state = _State(state.generation + 1, [merged], dict(state.skipped), list(state.problems))
                self._write_state(new_state)
            update = Update(new_state.generation, merged=True, seconds=time.perf_counter() - started)
            self._swap(new_state, update, started)
            return update

    # -- meaning ------------------------------------------------------------------------------------------

    def open_vectors(self, *, threads: int = 1) -> VectorBuild | ComposedVectorBuild | None:
        """Rank by meaning, as ``retrieval.open_vectors`` does for a fixed index: the current generation's
        embeddings, loaded from the cache or to be made by the returned build's ``run()`` (slow: run it
        in the background); None, with the reason logged, when meaning is off. Every later generation
        gets its embeddings at the swap, its segments' own reused; a segment an update adds goes live at
        once and is embedded in a background thread, its sentences ranked by their words until then
        (the rest of the index keeps its meaning: see ``compose.ComposedVectors``)."""
        load, self._encoder_load = self._encoder_load, None
        if load is not None and load.threads == threads:
            encoder = load.result()
        else:
            encoder = load_encoder(self.settings, threads=threads, cache_dir=self.cache_dir)
        if encoder is None:
            return None
        with self._lock:
            self._encoder = encoder
            build = self._vectors_for(self.index)
            self.index.attach_vectors(build)
        return build

    def close(self, timeout: float = 30.0) -> None:
        """Stop the embedding threads an update started (what they made is kept for the next start)."""
        with self._embedders_lock:
            embedders = list(self._embedders)
        for _, build in embedders:
            build.stop()
        for thread, _ in embedders:
            thread.join(timeout)

    def _vectors_for(self, index: SearchIndex) -> VectorBuild | ComposedVectorBuild:
        assert self._encoder is not None
        parts = [p.index for p in index.composition.parts] if index.composition else [index]
        builds = []
        for part in parts:
            build = self._segment_vectors.get(part.fingerprint)
            if build is None:
                build = part.vector_build(self._encoder, self.cache_dir)
                assert isinstance(build, VectorBuild)
                self._segment_vectors[part.fingerprint] = build
            builds.append(build)
        live = {p.fingerprint for p in parts}
        for fingerprint in [f for f in self._segment_vectors if f not in live]:
            del self._segment_vectors[fingerprint]
        if index.composition is None:
            return builds[0]
        return ComposedVectorBuild(builds, index.composition)

    def _attach_meaning(self, index: SearchIndex) -> None:
        if self._encoder is None:
            return
        build = self._vectors_for(index)
        index.attach_vectors(build)
        if build.complete:
            return
        log.info("ranking by meaning: embedding %s new sentences in the background", f"{build.missing:,}")

        def embed() -> None:
            lower_this_threads_priority()  # searches and the next update go first
            try:
                build.run()
            finally:  # a finished build lets go of its generation's composition at once
                with self._embedders_lock:
                    self._embedders = [(t, b) for t, b in self._embedders if b is not build]

        thread = threading.Thread(target=embed, name="embed-update", daemon=True)
        with self._embedders_lock:
            self._embedders = [(t, b) for t, b in self._embedders if t.is_alive()]
            self._embedders.append((thread, build))
        thread.start()

    # -- internals -----------------------------------------------------------------------------------------

    def _swap(self, state: _State, update: Update, started: float) -> None:
        """Compose ``state``'s segments, give them meaning and make them the index; ``started`` is when
        the update began (``time.perf_counter()``), for the log line."""
        old = self.index
        new = self._compose(state.segments)
        new.adopt_warm_state(old)
        try:
            self._attach_meaning(new)
        except Exception:
            log.exception("ranking by meaning could not follow the update; words alone rank the new index")
        self._state = state
        for listener in self._listeners:
            try:
                listener(old, new, update)
            except Exception:
                log.exception("a listener of index updates failed")
        self.index = new  # the swap: one attribute, read whole by every search that starts after it
        self.documents_added += len(update.added) + len(update.changed)
        self.documents_removed += len(update.removed) + len(update.changed)
        del old  # the previous generation goes once the searches still holding it are done
        release_free_memory()
        log.info("index updated, %s", _with_seconds(update, time.perf_counter() - started).summary())

    def _compose(self, segments: Sequence[Segment]) -> SearchIndex:
        return compose([Part(s.index, s.removed) for s in segments], self.settings)

    def _bring_up_to_date(
        self, state: _State, *, workers: int | None, progress: Progress | None = None, settle: float,
        gather: float = 0.0, background: bool = False,
    ) -> tuple[_State, Update]:
        files, listing_problems = list_corpus_files(self.root)
        now = time.time_ns()
        current: dict[str, tuple[FileStat, Path]] = {}
        pending: list[str] = []
        for name, path in files:
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished meanwhile: as if it never was
            current[name] = ((st.st_size, st.st_mtime_ns), path)
        live_files: dict[str, tuple[int, FileStat]] = {}
        for number, segment in enumerate(state.segments):
            for name, stat in segment.files.items():
                if name not in segment.removed:
                    live_files[name] = (number, stat)
        to_read: list[tuple[str, Path, FileStat]] = []
        added: list[str] = []
        changed: list[str] = []
        youngest_wait: float | None = None  # counted from each pending file's modification time
        for name, (stat, path) in current.items():
            known = live_files.get(name)
            if known is not None and known[1] == stat:
                continue
            skipped = state.skipped.get(name)
            if known is None and skipped is not None and skipped[0] == stat:
                continue
            if settle > 0 and now - stat[1] < settle * 1e9:
                pending.append(name)
                wait = max(0.0, settle - (now - stat[1]) / 1e9)
                youngest_wait = wait if youngest_wait is None else min(youngest_wait, wait)
                continue
            to_read.append((name, path, stat))
            (changed if known is not None else added).append(name)
        oldest_ready = min((st[1] for _, _, st in to_read), default=now)
        if pending and to_read and now - oldest_ready < gather * 1e9:
            # part of a copy still going on: its written files wait for the rest (the module says why)
            all_settled = max(settle - (now - current[name][0][1]) / 1e9 for name in pending)
            youngest_wait = max(0.0, min(all_settled, gather - (now - oldest_ready) / 1e9))
            pending += [name for name, _, _ in to_read]
            to_read, added, changed = [], [], []
        gone = [name for name in live_files if name not in current]
        masked: dict[int, set[str]] = {}
        for name in [*gone, *changed]:
            masked.setdefault(live_files[name][0], set()).add(name)
        skipped_now = {n: v for n, v in state.skipped.items() if n in current}
        if not (to_read or gone or len(skipped_now) != len(state.skipped)):
            return state, Update(state.generation, pending=tuple(pending), ready_in=youngest_wait)

        segments = [
            Segment(s.entry, s.index, s.files, s.removed | frozenset(masked.get(i, ())))
            for i, s in enumerate(state.segments)
        ]
        for name, _, _ in to_read:
            skipped_now.pop(name, None)
        segment, problems = self._segment_of(
            to_read, workers=workers, progress=progress, background=background
        )
        for problem in problems:
            if problem.skipped and problem.file not in skipped_now:
                stat = next(st for n, _, st in to_read if n == problem.file)
                skipped_now[problem.file] = (stat, problem)
        unreadable = set(skipped_now)
        added = [n for n in added if n not in unreadable]  # an unreadable new file adds nothing
        if segment is not None:
            segments.append(segment)
        segments = [s for s in segments if s.live_documents > 0]
        read_names = {n for n, _, _ in to_read}
        kept_problems = [p for p in state.problems if p.file in current and p.file not in read_names]
        kept_problems += [p for p in problems if not p.skipped]
        kept_problems += [p for p in listing_problems if not any(p.file == q.file for q in kept_problems)]
        new_state = _State(state.generation + 1, segments, skipped_now, kept_problems)
        if segments:
            self._write_state(new_state)
        update = Update(
            new_state.generation, tuple(added), tuple(changed), tuple(gone), tuple(problems), tuple(pending),
            ready_in=youngest_wait,
        )  # fmt: skip
        return new_state, update

    def _segment_of(
        self,
        files: list[tuple[str, Path, FileStat]],
        *,
        workers: int | None,
        progress: Progress | None = None,
        background: bool = False,
    ) -> tuple[Segment | None, list[Problem]]:
        """The segment of these files (None if none is readable) and their problems: from the cache when
        they were indexed before (a crash after the segment was written, or an index cached before
        segments existed: nothing is read), else read, analysed and written to the cache."""
        stats = {name: stat for name, _, stat in files}
        entry = self.cache_dir / f"index-{segment_key(self.settings, stats)}" if self.cache_dir else None
        if entry is not None and not self._rebuild and files:
            try:
                index, meta = read_entry(entry, self.settings)
            except CacheEntryError:
                pass
            else:
                held = {d.name for d in index._store.documents}
                problems = [Problem(**p) for p in meta["problems"]]
                return Segment(entry.name, index, {n: st for n, st in stats.items() if n in held}), problems
        documents: list[Document] = []
        problems = []
        for name, path, _ in files:
            document, doc_problems = read_document(path, name)
            if document is None and not any(p.skipped for p in doc_problems):
                doc_problems = [*doc_problems, Problem(name, "could not be read", True)]
            problems.extend(doc_problems)
            if document is not None:
                documents.append(document)
        if not documents:
            return None, problems
        held_stats = {d.name: stats[d.name] for d in documents}
        index = SearchIndex.build(
            documents, self.settings, workers=workers, progress=progress, background=background
        )
        if entry is None:
            return Segment(None, index, held_stats), problems
        skipped = len(files) - len(documents)
        write_entry(entry, index, tuple(problems), len(documents), skipped, corpus=self.root, replace=True)
        index, _ = read_entry(entry, self.settings)  # memory-mapped, as every other segment
        return Segment(entry.name, index, held_stats), problems

    def _merged_segment(self, segments: Sequence[Segment]) -> Segment:
        from retrieval.compose import compact

        composed = self._compose(segments)
        merged_index = compact(composed)
        forwards = merged_forwards(composed)
        files = {n: st for s in segments for n, st in s.files.items() if n not in s.removed}
        if self.cache_dir is None:
            merged_index.forwards = forwards
            return Segment(None, merged_index, files)
        entry = self.cache_dir / f"index-{segment_key(self.settings, files)}"
        write_entry(entry, merged_index, (), len(files), 0, corpus=self.root, replace=True)
        write_forwards(entry, forwards)
        self._carry_vectors(composed, merged_index)
        index, _ = read_entry(entry, self.settings)
        return Segment(entry.name, index, files)

    def _embeddings_in_step(self, segments: Sequence[Segment]) -> bool:
        """Whether every segment has the embeddings the others have (all of them, or none): only then can
        a merge carry them over instead of sending the corpus through the model again."""
        from retrieval.compose import _vector_folders

        builds = [self._segment_vectors.get(s.index.fingerprint) for s in segments]
        if self._encoder is not None:
            return all(b is not None and b.vectors is not None for b in builds)
        if self.cache_dir is None:
            return True
        models = [set(_vector_folders(self.cache_dir, s.index.fingerprint)) for s in segments]
        return all(m == models[0] for m in models)

    def _carry_vectors(self, composed: SearchIndex, merged: SearchIndex) -> None:
        """Write the merged segment's embeddings from its parts' (when every part has them), so that a
        merge never sends the corpus back through the model."""
        from retrieval.compose import write_composed_vectors

        assert self.cache_dir is not None
        try:
            write_composed_vectors(composed, merged.fingerprint, self.cache_dir)
        except OSError as error:
            log.warning("could not keep the embeddings through the merge: %s", error)

    # -- the manifest ---------------------------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path | None:
        """Where the manifest of this corpus folder and settings lives (None without a cache folder)."""
        if self.cache_dir is None:
            return None
        key = json.dumps([str(self.root.resolve()), self.settings.fingerprint]).encode("utf-8")
        return self.cache_dir / f"live-{hashlib.sha256(key).hexdigest()[:16]}.json"

    @contextlib.contextmanager
    def _manifest_lock(self) -> Iterator[None]:
        path = self.manifest_path
        if path is None:
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a+b") as lock:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise OSError(f"{path.with_suffix('.lock')} is held by another process") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _read_state(self, *, newer_than: int = -1) -> _State | None:
        """The state the manifest on disk describes, if its generation is above ``newer_than``, with its
        segments loaded (those already loaded here are reused); None without a usable, newer manifest. A
        segment that cannot be loaded is dropped, so its files count as new and are indexed again."""
        path = self.manifest_path
        if path is None:
            return None
        try:
            seen = _file_identity(path)
        except FileNotFoundError:
            return None
        except OSError:
            seen = None
        if newer_than >= 0 and seen is not None and seen == self._manifest_seen:
            return None  # the very file this process last wrote or read: nothing newer (a rename is new)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != MANIFEST_FORMAT or data.get("settings") != self.settings.fingerprint:
                raise ValueError("written by another version or with other settings")
            generation = int(data["generation"])
            if generation <= newer_than:
                self._manifest_seen = seen
                return None
            records = list(data["segments"])
            skipped = {
                str(n): ((int(v[0]), int(v[1])), Problem(str(n), str(v[2]), True))
                for n, v in dict(data.get("skipped", {})).items()
            }
            problems = [
                Problem(str(p["file"]), str(p["message"]), bool(p["skipped"])) for p in data["problems"]
            ]
        except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
            log.warning("the index manifest %s is unusable (%s); the corpus is compared afresh", path, error)
            return None
        loaded = {s.entry: s.index for s in getattr(self, "_state", _State(0, [])).segments if s.entry}
        segments: list[Segment] = []
        for record in records:
            try:
                entry = str(record["entry"])
                files = {str(n): (int(size), int(mtime)) for n, size, mtime in record["files"]}
                removed = frozenset(str(n) for n in record.get("removed", ()))
                index = loaded.get(entry) or read_entry(self.cache_dir / entry, self.settings)[0]  # type: ignore[operator]
            except (CacheEntryError, KeyError, TypeError, ValueError) as error:
                log.warning("index segment %s is unusable (%s); its files are indexed again",
                            record.get("entry") if isinstance(record, dict) else record, error)  # fmt: skip
                continue
            segments.append(Segment(entry, index, files, removed))
        written = data.get("written")
        self._manifest_seen = seen
        return _State(generation, segments, skipped, problems, float(written) if written else None)

    def _write_state(self, state: _State) -> None:
        state.written = time.time()
        path = self.manifest_path
        if path is None:
            return
        data = {
            "format": MANIFEST_FORMAT,
            "settings": self.settings.fingerprint,
            "corpus": str(self.root.resolve()),
            "generation": state.generation,
            "written": state.written,
            "segments": [
                {
                    "entry": s.entry,
                    "files": [[n, *st] for n, st in s.files.items()],
                    "removed": sorted(s.removed),
                }
                for s in state.segments
            ],
            "skipped": {n: [*st, p.message] for n, (st, p) in state.skipped.items()},
            "problems": [
                {"file": p.file, "message": p.message, "skipped": p.skipped} for p in state.problems
            ],
        }
        temporary = path.with_name(f".tmp-{path.name}-{os.getpid()}")
        text = json.dumps(data, ensure_ascii=False)  # in one go: json.dump's streaming encoder is Python
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        with contextlib.suppress(OSError):
            self._manifest_seen = _file_identity(path)
        with contextlib.suppress(OSError):
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        entries = {s.entry for s in state.segments if s.entry}
        # Housekeeping reads every entry of the cache: after a merge (entries let go), else once a while.
        let_go = bool(self._pruned_with - entries)
        if let_go or time.monotonic() - self._pruned_at >= PRUNE_EVERY:
            prune(path.parent, keep_entries=entries)
            self._pruned_at = time.monotonic()
        self._pruned_with = entries


def _file_identity(path: Path) -> tuple[int, int, int, int]:
    """What tells one version of a file from another: a manifest is replaced by a rename, so a new one
    has a new inode, whatever its size and time."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def segment_key(settings: IndexSettings, files: dict[str, FileStat]) -> str:
    """The cache key of the segment of these files: for a whole corpus, the key ``cache_key`` gives it,
    so an index cached before segments existed is taken as the first segment."""
    manifest = [[name, size, mtime] for name, (size, mtime) in sorted(files.items())]
    payload = json.dumps([settings.fingerprint, manifest], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:24]


def merge_due(segments: Sequence[Segment]) -> bool:
    """Whether the segments are many enough, or masked enough, to be worth folding into one."""
    if len(segments) > MAX_SEGMENTS:
        return True
    total = sum(len(s.index._store) for s in segments)
    masked = sum(d.n_sentences for s in segments for d in s.index._store.documents if d.name in s.removed)
    return bool(total) and masked / total > MAX_REMOVED_SHARE


def _counted(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _with_seconds(update: Update, seconds: float) -> Update:
    return dataclasses.replace(update, seconds=seconds)

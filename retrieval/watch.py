"""Keeping a :class:`~retrieval.live.LiveIndex` up to date while it is searched: a thread that refreshes it.

The thread waits on three things: changes in the corpus folder (``watchfiles``: inotify on Linux, polling
where that is not available, e.g. on some network file systems), a new manifest written by another
process (``corpus-bot index`` run beside the bot), and explicit requests (:meth:`CorpusWatcher.request`,
which the bot calls on SIGHUP). A refresh also runs every ``poll_every`` seconds, in case an event was
missed. Files still being written are looked at again once they have had ``settle`` seconds of quiet.
When the segments have grown many, they are merged here too, between updates.

The thread runs at a lower CPU priority (``retrieval.background``): composing a new generation keeps a core
busy for a few hundred milliseconds at a million sentences, and a question asked meanwhile got half of it
(p99 of the questions overlapping a one-document refresh 91-118 ms, against 42 ms once lowered, at a
steady p99 of 24-30 ms; ``benchmarks/bench_growth.py``, one core). New documents still go live in ~1 s.

A failing refresh (the disk full, the cache folder unwritable) is logged and counted by the live index;
the index in use stays as it was and the next event tries again.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from retrieval.background import lower_this_threads_priority
from retrieval.live import SETTLE_SECONDS, LiveIndex, Update

log = logging.getLogger(__name__)

POLL_EVERY = 300.0  # seconds between two refreshes when nothing is heard of
_WAKE_MS = 50  # how often the waiting thread looks at requests and pending files
_DEBOUNCE_MS = 50  # changes arriving this close together are taken as one


class CorpusWatcher:
    """A thread that keeps ``live`` up to date (see the module's docstring); :meth:`start`, :meth:`stop`."""

    def __init__(
        self,
        live: LiveIndex,
        *,
        settle: float = SETTLE_SECONDS,
        poll_every: float = POLL_EVERY,
        force_polling: bool | None = None,
        on_update: Callable[[Update], None] | None = None,
    ) -> None:
        self.live = live
        self.settle = settle
        self.poll_every = poll_every
        self.force_polling = force_polling
        self.on_update = on_update
        self._stop = threading.Event()
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_look: float | None = None  # monotonic time of a look due for files still being written
        self.refreshes = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="corpus-watcher", daemon=True)
        self._thread.start()

    def start_on_request(self) -> None:
        """Refresh only when asked (:meth:`request`, i.e. on SIGHUP), without watching the folder."""
        self._thread = threading.Thread(target=self._serve_requests, name="corpus-refresher", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Refresh as soon as possible (thread- and signal-safe: it only sets an event)."""
        self._wanted.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop watching; waits for a refresh in progress to finish (it leaves a consistent index)."""
        self._stop.set()
        self._wanted.set()  # wakes a thread that serves requests only
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        from watchfiles import watch

        lower_this_threads_priority()  # a refresh shares the cores with the searches: theirs go first
        root = self.live.root.resolve()
        paths: list[Path] = [root]
        manifest = self.live.manifest_path
        if manifest is not None:
            manifest.parent.mkdir(parents=True, exist_ok=True)
            paths.append(manifest.parent.resolve())

        def interesting(_change: object, path: str) -> bool:
            where = Path(path)
            in_cache = manifest is not None and where.parent == manifest.parent.resolve()
            if in_cache and root not in where.parents:
                return where.name == manifest.name  # type: ignore[union-attr]
            return not where.name.startswith(".")

        last_refresh = time.monotonic()
        first = True  # the first yield comes once the watch is in place: look once, for what came before
        try:
            for changes in watch(
                *paths,
                watch_filter=interesting,
                debounce=_DEBOUNCE_MS,
                step=_DEBOUNCE_MS,
                stop_event=self._stop,
                rust_timeout=_WAKE_MS,
                yield_on_timeout=True,
                force_polling=self.force_polling,
                raise_interrupt=False,
            ):
                if self._stop.is_set():
                    break
                now = time.monotonic()
                wait = self._still_being_written(changes)
                if wait is not None:  # nothing to do before they have settled: look once, then
                    look = now + wait
                    self._next_look = look if self._next_look is None else min(self._next_look, look)
                due = (
                    first
                    or (bool(changes) and wait is None)
                    or self._wanted.is_set()
                    or (self._next_look is not None and now >= self._next_look)
                    or now - last_refresh >= self.poll_every
                )
                first = False
                if due:
                    self._wanted.clear()
                    self._refresh()
                    last_refresh = time.monotonic()
        except Exception:
            log.exception("watching %s failed; new files are seen only after a restart (or SIGHUP)", root)

    def _still_being_written(self, changes: set[tuple[object, str]]) -> float | None:
        """Seconds until every file of ``changes`` has been still for ``settle``, when all of them are
        files written less than that ago (a refresh now would only find them young); None when any
        change is something else (a file removed, the manifest, a folder), or waits for nothing."""
        if not changes or self.settle <= 0:
            return None
        manifest = self.live.manifest_path
        now = time.time_ns()
        wait = 0.0
        for _change, path in changes:
            where = Path(path)
            if manifest is not None and where.name == manifest.name:
                return None
            try:
                st = os.stat(where)
            except OSError:
                return None  # gone: a removal to take in now
            if not stat.S_ISREG(st.st_mode):
                return None
            young = self.settle - (now - st.st_mtime_ns) / 1e9
            if young <= 0:
                return None
            wait = max(wait, young)
        return wait

    def _serve_requests(self) -> None:
        lower_this_threads_priority()
        while not self._stop.is_set():
            self._wanted.wait(_WAKE_MS / 1000 if self._next_look is not None else None)
            if self._stop.is_set():
                break
            if self._wanted.is_set() or (self._next_look is not None and time.monotonic() >= self._next_look):
                self._wanted.clear()
                self._refresh()

    def _refresh(self) -> None:
        self._next_look = None
        try:
            update = self.live.refresh(settle=self.settle)
        except Exception as error:
            log.error("updating the index failed (the index in use stays as it was): %s", error)
            return
        self.refreshes += 1
        if update.pending:
            # A file is ready once it has been still for ``settle`` seconds since it was last written,
            # not since this look found it young.
            wait = self.settle if update.ready_in is None else update.ready_in
            self._next_look = time.monotonic() + wait
        for problem in update.problems:
            log.warning("%s", problem)
        if update.changed_anything and self.on_update is not None:
            try:
                self.on_update(update)
            except Exception:
                log.exception("reporting an index update failed")
        if update.changed_anything:
            try:  # what the first questions of the new generation would otherwise wait for
                self.live.index.warm_up()
            except Exception:
                log.exception("warming the updated index up failed")
        try:
            merged = self.live.merge()
        except Exception as error:
            log.error("merging the index segments failed (they stay as they are): %s", error)
        else:
            if merged is not None:
                log.info("index segments merged: %s", merged.summary())


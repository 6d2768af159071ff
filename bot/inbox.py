"""The inbox: every update the bot has accepted, on disk until its answer has been delivered.

Telegram forgets an update once the bot has acknowledged it (a 200 to the webhook, a later ``getUpdates``
offset). From then on the update exists only in the bot's memory, and a crash, a restart or an answer that
cannot be sent would lose it for good. So each update is written here *before* it is acknowledged, and
marked finished only when its answer was accepted by Telegram (or given up on, after the retry time). On
start, the updates still open are handled first; an ``update_id`` seen before is not handled again
(Telegram redelivers what it thinks was not received).

The store is SQLite from the standard library: one file, transactions, and crash safety without a server.
It runs in WAL mode with ``synchronous=NORMAL``: a commit is in the operating system's hands before the
update is acknowledged, so a killed or crashed bot process loses nothing; only a power cut or a kernel
crash can lose the last moments (``synchronous=FULL`` would cost an fsync per update). Each call is one
short transaction of well under a millisecond, so it runs on the event loop's thread.

A file that is not a readable inbox (corrupt, not SQLite, or locked by another process for longer than
``LOCK_WAIT``) is moved aside under a new name and a fresh inbox is started; :attr:`Inbox.set_aside` says
which file that was, for the start-up log.

    inbox = Inbox.open(settings.inbox_path)
    if inbox.record(update_id, raw_json):        # False: seen before, do not handle again
        ...
    inbox.finish(update_id, Outcome.ANSWERED)
    for pending in inbox.unfinished(): ...         # at start-up
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Inbox", "InboxError", "Outcome", "PendingUpdate"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
LOCK_WAIT = 5.0  # seconds to wait for another process's lock before setting the file aside
PRUNE_EVERY = 1000  # finished updates between two clean-ups of expired rows

_SCHEMA = """
CREATE TABLE IF NOT EXISTS updates (
    update_id INTEGER PRIMARY KEY,
    received  REAL NOT NULL,
    payload   TEXT NOT NULL,
    outcome   TEXT,
    finished  REAL
);
CREATE INDEX IF NOT EXISTS updates_open ON updates (received) WHERE outcome IS NULL;
CREATE INDEX IF NOT EXISTS updates_finished ON updates (finished) WHERE outcome IS NOT NULL;
"""


class InboxError(Exception):
    """The inbox cannot be used at all (its folder cannot be written, say). One line for the operator."""


class Outcome(enum.StrEnum):
    """How an update was finished."""

    ANSWERED = "answered"  # the answer was accepted by Telegram (or there was nothing to answer)
    GIVEN_UP = "given_up"  # the answer could not be delivered within delivery.retry_for
    DROPPED_LATE = "dropped_late"  # older than delivery.max_age, and delivery.late is "drop"


@dataclass(frozen=True)
class PendingUpdate:
    update_id: int
    received: float  # Unix time the bot accepted it
    payload: str  # the update as Telegram sent it (JSON)


class Inbox:
    """The updates of one bot, in one SQLite file. Not thread-safe: use it from one thread (the loop's)."""

    def __init__(self, connection: sqlite3.Connection, path: Path, *, retention: float,
                 clock: Callable[[], float] = time.time, set_aside: Path | None = None) -> None:
        self._db = connection
        self.path = path
        self.retention = retention
        self.set_aside = set_aside
        self._clock = clock
        self._finished_since_prune = 0
        self._open: dict[int, float] = {}  # update_id -> time received, for the updates not finished

    @classmethod
    def open(
        cls, path: Path, *, retention_days: float = 7.0, clock: Callable[[], float] = time.time
    ) -> Inbox:
        """Open (or create) the inbox at ``path``; a broken or locked file is set aside for a fresh one."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InboxError(f"cannot create the folder of the inbox {path}: {error.strerror or error}") \
                from None
        set_aside: Path | None = None
        try:
            connection = _connect(path)
        except sqlite3.DatabaseError as error:  # corrupt, not a database, or locked (OperationalError)
            set_aside = _set_aside(path, _reason(error))
            try:
                connection = _connect(path)
            except sqlite3.DatabaseError as again:
                raise InboxError(f"cannot open the inbox {path}: {again}") from None
        inbox = cls(connection, path, retention=retention_days * 86_400, clock=clock, set_aside=set_aside)
        inbox.prune()
        return inbox

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    # ---------------------------------------------------------------- writing

    def record(self, update_id: int, payload: str) -> bool:
        """Keep an update before it is acknowledged. False if ``update_id`` was seen before: skip it."""
        received = self._clock()
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO updates (update_id, received, payload) VALUES (?, ?, ?)",
            (update_id, received, payload),
        )
        if cursor.rowcount != 1:
            return False
        self._open[update_id] = received
        return True

    def finish(self, update_id: int, outcome: Outcome) -> None:
        """The update needs nothing more. Its id is remembered for ``retention`` (its payload is not)."""
        self._open.pop(update_id, None)
        self._db.execute(
            "UPDATE updates SET outcome = ?, finished = ?, payload = ''"
            " WHERE update_id = ? AND outcome IS NULL",
            (str(outcome), self._clock(), update_id),
        )
        self._finished_since_prune += 1
        if self._finished_since_prune >= PRUNE_EVERY:
            self.prune()

    def prune(self) -> int:
        """Forget finished updates older than ``retention``; returns how many."""
        self._finished_since_prune = 0
        cursor = self._db.execute(
            "DELETE FROM updates WHERE outcome IS NOT NULL AND finished < ?",
            (self._clock() - self.retention,),
        )
        return cursor.rowcount

    # ---------------------------------------------------------------- reading

    def unfinished(self) -> list[PendingUpdate]:
        """Updates accepted but not finished, oldest first: what a new start handles before anything else."""
        rows = self._db.execute(
            "SELECT update_id, received, payload FROM updates WHERE outcome IS NULL"
            " ORDER BY received, update_id"
        ).fetchall()
        pending = [PendingUpdate(int(u), float(r), str(p)) for u, r, p in rows]
        self._open.update((u.update_id, u.received) for u in pending)
        return pending

    def received_at(self, update_id: int) -> float | None:
        """When an unfinished update was first received (None for one finished or never seen)."""
        received = self._open.get(update_id)
        if received is None:
            row = self._db.execute(
                "SELECT received FROM updates WHERE update_id = ? AND outcome IS NULL", (update_id,)
            ).fetchone()
            received = None if row is None else float(row[0])
        return received

    def depth(self) -> int:
        """How many updates wait for an answer."""
        (count,) = self._db.execute("SELECT count(*) FROM updates WHERE outcome IS NULL").fetchone()
        return int(count)

    def oldest_age(self) -> float:
        """Seconds the oldest unfinished update has waited (0 when there is none)."""
        (oldest,) = self._db.execute("SELECT min(received) FROM updates WHERE outcome IS NULL").fetchone()
        return 0.0 if oldest is None else max(0.0, self._clock() - float(oldest))

    def counts(self) -> dict[str, int]:
        """Rows by outcome ("open" for unfinished), for logs and tests."""
        query = "SELECT coalesce(outcome, 'open'), count(*) FROM updates GROUP BY 1"
        rows = self._db.execute(query).fetchall()
        return {str(outcome): int(count) for outcome, count in rows}


def _connect(path: Path) -> sqlite3.Connection:
    """A connection to a checked inbox: schema in place, WAL on, the file ours to write."""
    connection = sqlite3.connect(path, timeout=LOCK_WAIT, isolation_level=None, check_same_thread=False)
    with _closing_on_error(connection):
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        (check,) = connection.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version not in (0, SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"inbox format {version}, this version reads {SCHEMA_VERSION}")
        connection.execute("BEGIN IMMEDIATE")  # waits LOCK_WAIT at most for another process's write lock
        connection.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")  # commits
    return connection


@contextlib.contextmanager
def _closing_on_error(connection: sqlite3.Connection) -> Iterator[None]:
    try:
        yield
    except BaseException:
        connection.close()
        raise


def _reason(error: sqlite3.DatabaseError) -> str:
    text = str(error)
    return "locked by another process" if "locked" in text.lower() else text


def _set_aside(path: Path, reason: str) -> Path:
    """Move a broken inbox (and its WAL files) out of the way; returns its new name."""
    aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            try:
                source.rename(f"{aside}{suffix}")
            except OSError as error:
                raise InboxError(f"the inbox {path} cannot be used ({reason}) nor moved aside: "
                                 f"{error.strerror or error}") from None
    logger.error("the inbox %s cannot be used (%s): set aside as %s; starting with an empty inbox",
                 path, reason, aside.name)
    return aside

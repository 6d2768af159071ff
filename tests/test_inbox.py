"""The inbox on disk: what it keeps, what it forgets, and what it does with a file it cannot use."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from bot import inbox as inbox_module
from bot.inbox import Inbox, InboxError, Outcome


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_update_is_kept_until_finished_and_handled_once(tmp_path):
    clock = Clock()
    inbox = Inbox.open(tmp_path / "inbox.sqlite3", clock=clock)
    assert inbox.record(7, '{"update_id": 7}')
    assert not inbox.record(7, '{"update_id": 7}')  # redelivered by Telegram: skipped
    clock.now += 30
    assert inbox.record(8, '{"update_id": 8}')
    assert inbox.depth() == 2 and inbox.oldest_age() == 30
    inbox.finish(7, Outcome.ANSWERED)
    assert [u.update_id for u in inbox.unfinished()] == [8]
    assert not inbox.record(7, "{}")  # still remembered after it was answered
    assert inbox.counts() == {"answered": 1, "open": 1}
    inbox.close()


def test_it_survives_a_restart_and_gives_back_the_open_ones_oldest_first(tmp_path):
    path = tmp_path / "inbox.sqlite3"
    clock = Clock()
    first = Inbox.open(path, clock=clock)
    for update_id in (12, 10, 11):
        clock.now += 1
        first.record(update_id, f'{{"update_id": {update_id}}}')
    first.finish(10, Outcome.GIVEN_UP)
    first.close()
    again = Inbox.open(path, clock=clock)
    pending = again.unfinished()
    assert [u.update_id for u in pending] == [12, 11]
    assert pending[0].payload == '{"update_id": 12}'
    assert again.counts()["given_up"] == 1


def test_a_killed_process_loses_nothing_it_recorded(tmp_path):
    path = tmp_path / "inbox.sqlite3"
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from bot.inbox import Inbox
        inbox = Inbox.open(Path({str(path)!r}))
        for update_id in range(1, 101):
            inbox.record(update_id, "{{}}")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == -9
    assert Inbox.open(path).depth() == 100


def test_finished_updates_are_forgotten_after_the_retention(tmp_path):
    clock = Clock()
    inbox = Inbox.open(tmp_path / "inbox.sqlite3", retention_days=1, clock=clock)
    inbox.record(1, "{}")
    inbox.finish(1, Outcome.ANSWERED)
    inbox.record(2, "{}")  # open: never forgotten, however old
    clock.now += 86_400 + 1
    assert inbox.prune() == 1
    assert inbox.counts() == {"open": 1}
    assert inbox.record(1, "{}")  # a week later an id may come again (Telegram starts anew)


def test_finishing_prunes_now_and_then(tmp_path, monkeypatch):
    monkeypatch.setattr(inbox_module, "PRUNE_EVERY", 3)
    clock = Clock()
    inbox = Inbox.open(tmp_path / "inbox.sqlite3", retention_days=1, clock=clock)
    for update_id in range(1, 3):
        inbox.record(update_id, "{}")
        inbox.finish(update_id, Outcome.ANSWERED)
    clock.now += 2 * 86_400
    inbox.record(3, "{}")
    inbox.finish(3, Outcome.ANSWERED)  # the third finish prunes the two old ones
    assert inbox.counts() == {"answered": 1}


def test_a_corrupt_file_is_set_aside_and_a_fresh_inbox_started(tmp_path, caplog):
    path = tmp_path / "inbox.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    inbox = Inbox.open(path)
    assert inbox.set_aside is not None and inbox.set_aside.read_bytes().startswith(b"this is not")
    assert inbox.depth() == 0 and inbox.record(1, "{}")
    assert f"set aside as {inbox.set_aside.name}" in caplog.text


def test_a_file_locked_by_another_process_is_set_aside(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(inbox_module, "LOCK_WAIT", 0.2)
    path = tmp_path / "inbox.sqlite3"
    Inbox.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        inbox = Inbox.open(path)
    finally:
        holder.close()
    assert inbox.set_aside is not None
    assert "locked by another process" in caplog.text
    assert inbox.record(1, "{}")


def test_a_newer_format_is_not_read_but_kept(tmp_path):
    path = tmp_path / "inbox.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    inbox = Inbox.open(path)
    assert inbox.set_aside is not None and inbox.set_aside.exists()


def test_a_folder_that_cannot_be_made_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InboxError, match="cannot create the folder of the inbox"):
        Inbox.open(blocker / "sub" / "inbox.sqlite3")

"""A background thread lowers its own CPU priority, and only its own."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from retrieval import lower_this_threads_priority
from retrieval.background import BACKGROUND_NICE


@pytest.mark.skipif(sys.platform != "linux", reason="threads have their own nice value on Linux")
def test_only_the_calling_thread_yields() -> None:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    seen: dict[str, object] = {}

    def work() -> None:
        seen["lowered"] = lower_this_threads_priority()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == {"lowered": True, "nice": min(19, before + BACKGROUND_NICE)}
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # the process (its main thread) keeps its own


def test_without_thread_priorities_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "setpriority")
    assert lower_this_threads_priority() is False

"""Running ``corpus-bot run`` as a real process in tests: start it, wait for it, never leave it behind."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping

import httpx

from tests.conftest import REPO


@contextlib.contextmanager
def corpus_bot_run(*args: str, env: Mapping[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``python -m bot run ARGS`` with output captured; killed on the way out if still running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", *args],
        cwd=REPO, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def wait_for_http(url: str, timeout: float = 30.0, process: subprocess.Popen[str] | None = None) -> None:
    """Until ``url`` answers 200; fails at once, with its stderr, if ``process`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"the service exited with {process.returncode}: {stderr}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer 200 within {timeout} s")

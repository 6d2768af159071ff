"""Background work that must not slow the searches down: its thread runs at a lower CPU priority.

Embedding sentences (new documents, or a whole corpus after the first start) keeps a core busy for
seconds to hours, in a thread of the process that answers questions. When the cores are all taken (one
core, or two with the event loop and a refresh busy), the kernel's scheduler shares them evenly between
threads, and a search waits behind the model. On Linux each thread has its own nice value: raising the
embedding thread's lets every other thread of the process go first, and the embedding takes what is left.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

BACKGROUND_NICE = 10  # added to the thread's nice value (0 is the default; 19 the lowest priority)


def lower_this_threads_priority(nice: int = BACKGROUND_NICE) -> bool:
    """Make the calling thread yield the CPU to the process's other threads; True if it could.

    Only for a thread of its own (one that ends with its work): the priority cannot be raised again
    without privileges. Where threads have no nice value of their own, nothing changes."""
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None or os.uname().sysname != "Linux":
        return False  # elsewhere PRIO_PROCESS with a thread id would renice the whole process
    try:
        tid = threading.get_native_id()
        setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as error:
        log.debug("could not lower the priority of %s: %s", threading.current_thread().name, error)
        return False
    return True

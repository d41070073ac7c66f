"""A blocking, exclusive lock between processes that prepare the same files (one dataset, one archive).

``with exclusive(path):`` holds an ``flock`` on ``path`` (created if missing, and left in place, empty) while
the block runs; another process entering the same block waits for it. The kernel releases the lock when the
file is closed or its process ends, however it ends, so a killed build never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import pathlib
from collections.abc import Iterator


@contextlib.contextmanager
def exclusive(path: pathlib.Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (its folder is created) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield

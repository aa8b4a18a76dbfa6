"""One writer at a time per work directory: ``push`` holds a lock file next to the manifests.

Two pushes at once would both find no project or task and both create them; with the lock the second one
waits (and says so) until the first is done, then finds everything in place. The lock is an OS file lock
(``filelock``), released by the kernel if its holder dies, so a killed push never leaves the work directory
locked.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)
LOCK_FILE = ".push.lock"
P = ParamSpec("P")
T = TypeVar("T")


@contextmanager
def workdir_lock(workdir: str | Path, what: str = "push") -> Iterator[None]:
    """Hold the work directory's lock; if another process holds it, say so and wait for it."""
    path = Path(workdir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("another push holds %s; this %s waits for it to finish", path, what)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def one_at_a_time(fn: Callable[P, T]) -> Callable[P, T]:
    """Run ``fn(workdir, ...)`` holding ``workdir_lock(workdir)``."""
    @functools.wraps(fn)
    def locked(*args: P.args, **kwargs: P.kwargs) -> T:
        with workdir_lock(args[0] if args else kwargs["workdir"], fn.__name__):
            return fn(*args, **kwargs)
    return locked

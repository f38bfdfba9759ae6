"""One writer at a time per index: an advisory lock beside the index's versions.

`firs add`, `remove`, `compact`, `reindex` and a `build` over an existing index take it for
their whole run; a second writer is refused at once with who holds it. The lock is an
`flock` on `.NAME.lock` next to the index link, so the kernel drops it when its holder dies
(kill -9 included): there is never a stale lock to clear by hand. Readers never take it.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import FirsError


class IndexBusy(FirsError):
    """Another writer holds the index."""


def lock_path(target: Path) -> Path:
    target = Path(target).absolute()
    return target.parent / f".{target.name}.lock"


@contextmanager
def writer_lock(target: Path, what: str) -> Iterator[None]:
    """Hold the index's writer lock while the block runs; IndexBusy names the holder."""
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            raise IndexBusy(
                f"{target}: another writer is changing this index ({holder}); "
                "wait for it to finish (one writer at a time), then run this again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {what}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def command_line() -> str:
    """How the running command was called, for the lock's note."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200]

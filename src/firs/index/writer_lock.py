"""One writer at a time per index: an advisory lock beside the index's versions.

`firs add`, `remove`, `compact`, `reindex` and a `build` over an existing index take it for
their whole run; a second writer is refused at once with who holds it. The lock is an
`flock` on `.NAME.lock` next to the index link, so the kernel drops it when its holder dies
(kill -9 included): there is never a stale lock to clear by hand (a killed holder leaves the
empty file, which the next writer locks). Readers never take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import FirsError

# A holder killed with -9 is reaped a moment before the kernel drops its flock (seen: a writer
# started right after `wait()` was refused); a dead holder's lock is waited for this long.
DEAD_HOLDER_GRACE_S = 5.0


class IndexBusy(FirsError):
    """Another writer holds the index."""


def lock_path(target: Path) -> Path:
    target = Path(target).absolute()
    return target.parent / f".{target.name}.lock"


@contextmanager
def writer_lock(target: Path, what: str) -> Iterator[None]:
    """Hold the index's writer lock while the block runs; IndexBusy names the holder. The lock
    file is removed on release (nothing is left beside the index but after a kill -9)."""
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + DEAD_HOLDER_GRACE_S
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if not _alive(holder) and time.monotonic() < deadline:
                time.sleep(0.02)  # its holder is dead: the kernel is about to drop the lock
                continue
            raise IndexBusy(
                f"{target}: another writer is changing this index ({holder}); "
                "wait for it to finish (one writer at a time), then run this again"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder released and removed this file meanwhile: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {what}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)  # releases the lock


def _alive(holder: str) -> bool:
    """Whether the process a lock's note names still runs (True when the note names none)."""
    match = re.match(r"pid (\d+):", holder)
    if not match:
        return True
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def command_line() -> str:
    """How the running command was called, for the lock's note."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200]

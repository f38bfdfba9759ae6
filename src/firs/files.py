"""File helpers shared by every room."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

from .errors import IndexFormatError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_sqlite_readonly(path: Path, table: str, what: str) -> sqlite3.Connection:
    """An index's SQLite file opened read-only, checked by reading `table`; IndexFormatError
    naming `what` when it is missing or unreadable. Not `immutable`: `firs add`/`remove` change
    a served index's stores in place, and a reader must see each change whole."""
    return _opened(
        path,
        table,
        what,
        lambda: sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=10),
    )


def open_sqlite_writable(path: Path, table: str, what: str) -> sqlite3.Connection:
    """An index's SQLite file opened for changes in place, in write-ahead-log mode (readers are
    never blocked and see only whole transactions), synchronous at each commit."""
    return _opened(
        path,
        table,
        what,
        lambda: sqlite3.connect(path, timeout=10),
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
    )


def _opened(
    path: Path, table: str, what: str, connect: Callable[[], sqlite3.Connection], *pragmas: str
) -> sqlite3.Connection:
    """`connect` to an index's SQLite file, set `pragmas`, check it by reading `table`."""
    if not path.is_file():
        raise IndexFormatError(f"{path}: {what} missing")
    db = connect()
    try:
        for pragma in pragmas:
            db.execute(pragma)
        db.execute(f"SELECT count(*) FROM {table}").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise IndexFormatError(f"{path}: {what} unreadable ({exc})") from None
    return db

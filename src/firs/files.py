"""File helpers shared by every room."""

from __future__ import annotations

import hashlib
import sqlite3
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
    if not path.is_file():
        raise IndexFormatError(f"{path}: {what} missing")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=10)
    try:
        db.execute(f"SELECT count(*) FROM {table}").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise IndexFormatError(f"{path}: {what} unreadable ({exc})") from None
    return db


def open_sqlite_writable(path: Path, table: str, what: str) -> sqlite3.Connection:
    """An index's SQLite file opened for changes in place, in write-ahead-log mode (readers are
    never blocked and see only whole transactions), synchronous at each commit."""
    if not path.is_file():
        raise IndexFormatError(f"{path}: {what} missing")
    db = sqlite3.connect(path, timeout=10)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"SELECT count(*) FROM {table}").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise IndexFormatError(f"{path}: {what} unreadable ({exc})") from None
    return db

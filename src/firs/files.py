"""File helpers shared by every room."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

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


class Rows(list[Any]):
    """A statement's rows, read whole (SharedConnection.execute)."""

    def fetchone(self) -> Any:
        return self[0] if self else None

    def fetchall(self) -> list[Any]:
        return list(self)


class SharedConnection:
    """One sqlite3 connection that several threads use, one statement at a time: a statement
    runs and its rows are read whole under a lock. The service's workers, its index follower
    and its event loop read a store at once, and two threads inside one connection deadlock
    (a SQL function written in Python makes it likely). One connection, not one per thread:
    an index version that `firs compact` replaced is deleted while searches that started on it
    finish, and further connections to a deleted WAL database fail ("disk I/O error")."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.lock = threading.RLock()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        with self.lock:
            return Rows(self._db.execute(sql, params).fetchall())

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.lock:
            self._db.executemany(sql, rows)

    def executescript(self, script: str) -> None:
        with self.lock:
            self._db.executescript(script)

    def commit(self) -> None:
        with self.lock:
            self._db.commit()

    def close(self) -> None:
        with self.lock:
            self._db.close()

    def __enter__(self) -> SharedConnection:
        """A transaction (committed, or rolled back on an error) that no other thread enters."""
        self.lock.acquire()
        self._db.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._db.__exit__(*exc)
        finally:
            self.lock.release()

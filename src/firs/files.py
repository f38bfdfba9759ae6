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
    """An index's SQLite file opened read-only (immutable: no locks, no journal), checked by
    reading `table`; IndexFormatError naming `what` when it is missing or unreadable."""
    if not path.is_file():
        raise IndexFormatError(f"{path}: {what} missing")
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
    try:
        db.execute(f"SELECT count(*) FROM {table}").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise IndexFormatError(f"{path}: {what} unreadable ({exc})") from None
    return db

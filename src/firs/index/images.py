"""The index's own copies of its product pictures: one SQLite file of JPEG blobs.

The service only ever sends these bytes: pictures that decoded as images at build time,
re-encoded here, never a file named by a catalogue (a catalogue row naming /etc/passwd
serves nothing). Each is at most DISPLAY_SIDE pixels on its long side; thumbnails are made
from it.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

from PIL import Image

from ..files import SharedConnection, open_sqlite_readonly, open_sqlite_writable

DISPLAY_SIDE = 512  # the largest size the web page and the API offer
QUALITY = 85
_SCHEMA = (
    "CREATE TABLE images (id TEXT PRIMARY KEY, width INTEGER NOT NULL, height INTEGER NOT NULL, jpeg BLOB NOT NULL)"
)


def display_jpeg(image: Image.Image, side: int = DISPLAY_SIDE) -> bytes:
    """An RGB picture as JPEG bytes, at most `side` pixels on its long side."""
    if max(image.size) > side:
        image = image.copy()
        image.thumbnail((side, side), Image.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


class ImageStore:
    """Write during the build; open read-only to serve."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = SharedConnection(db)  # the service's threads read it at once

    @classmethod
    def create(cls, path: Path) -> ImageStore:
        db = sqlite3.connect(path)
        db.execute(_SCHEMA)
        return cls(db)

    @classmethod
    def open_readonly(cls, path: Path) -> ImageStore:
        return cls(open_sqlite_readonly(path, "images", "picture store"))

    @classmethod
    def open_writable(cls, path: Path) -> ImageStore:
        """A built picture store opened for `firs add`/`remove` (write-ahead logging)."""
        return cls(open_sqlite_writable(path, "images", "picture store"))

    def delete(self, product_ids: list[str]) -> None:
        self.db.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in product_ids])

    def put(self, product_id: str, jpeg: bytes) -> None:
        with Image.open(io.BytesIO(jpeg)) as image:
            width, height = image.size
        self.db.execute("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?)", (product_id, width, height, jpeg))

    def get(self, product_id: str) -> bytes | None:
        row = self.db.execute("SELECT jpeg FROM images WHERE id = ?", (product_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.close()

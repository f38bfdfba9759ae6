"""The product store: one SQLite file inside the index directory.

Row `idx` is the product's label in the ANN index (the seed's ASIN_Idx / ASIN_Data).
Products that failed to fetch or decode stay in the store with their status and reason,
and no `idx`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import IndexFormatError
from .product import Product

SCHEMA = """
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    idx INTEGER UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    brand TEXT NOT NULL DEFAULT '',
    categories TEXT NOT NULL DEFAULT '[]',
    price REAL,
    image_source TEXT NOT NULL,
    image_path TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    origin TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}'
);
"""
_COLUMNS = "id, idx, title, brand, categories, price, image_source, image_path, status, reason, metadata"


class ProductStore:
    """Write once at build time, then open read-only for search."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.db = connection
        self.db.row_factory = sqlite3.Row

    @classmethod
    def create(cls, path: Path) -> ProductStore:
        db = sqlite3.connect(path)
        db.executescript(SCHEMA)
        return cls(db)

    @classmethod
    def open_readonly(cls, path: Path) -> ProductStore:
        if not path.is_file():
            raise IndexFormatError(f"{path}: product store missing")
        db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        try:
            db.execute("SELECT count(*) FROM products").fetchone()
        except sqlite3.DatabaseError as exc:
            raise IndexFormatError(f"{path}: product store unreadable ({exc})") from None
        return cls(db)

    def add(self, products: Iterable[Product], status: str = "read") -> None:
        with self.db:
            self.db.executemany(
                "INSERT INTO products (id, title, brand, categories, price, image_source,"
                " status, origin, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        p.id,
                        p.title,
                        p.brand,
                        json.dumps(p.categories),
                        p.price,
                        p.image,
                        status,
                        p.origin,
                        json.dumps(p.metadata, ensure_ascii=False),
                    )
                    for p in products
                ),
            )

    def set_status(
        self, product_id: str, status: str, reason: str | None = None, image_path: str | None = None
    ) -> None:
        self.db.execute(
            "UPDATE products SET status = ?, reason = ?, image_path = coalesce(?, image_path) WHERE id = ?",
            (status, reason, image_path, product_id),
        )

    def assign_labels(self, ids: Sequence[str]) -> None:
        """Mark these products indexed, with ANN labels 0..n-1 in this order."""
        with self.db:
            self.db.executemany(
                "UPDATE products SET idx = ?, status = 'indexed', reason = NULL WHERE id = ?",
                enumerate(ids),
            )

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def count(self, status: str | None = None) -> int:
        if status is None:
            return self.db.execute("SELECT count(*) FROM products").fetchone()[0]
        return self.db.execute("SELECT count(*) FROM products WHERE status = ?", (status,)).fetchone()[0]

    def by_labels(self, labels: Sequence[int]) -> list[dict[str, Any]]:
        """Products for ANN labels, in the order given."""
        if not labels:
            return []
        marks = ",".join("?" * len(labels))
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM products WHERE idx IN ({marks})", [int(x) for x in labels]
        ).fetchall()
        found = {row["idx"]: _row_dict(row) for row in rows}
        return [found[int(label)] for label in labels if int(label) in found]

    def get(self, product_id: str) -> dict[str, Any] | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM products WHERE id = ?", (product_id,)).fetchone()
        return _row_dict(row) if row else None

    def label_of(self, product_id: str) -> int | None:
        row = self.db.execute("SELECT idx FROM products WHERE id = ?", (product_id,)).fetchone()
        return None if row is None else row[0]


def _row_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A result record: metadata fields at top level, then the fixed fields on top."""
    categories = json.loads(row["categories"])
    record: dict[str, Any] = dict(json.loads(row["metadata"]))
    record.update(
        id=row["id"],
        title=row["title"],
        brand=row["brand"],
        category=categories[-1] if categories else "",
        categories=categories,
        price=row["price"],
        image=row["image_path"] or row["image_source"],
        image_source=row["image_source"],
        status=row["status"],
    )
    if row["reason"]:
        record["reason"] = row["reason"]
    return record

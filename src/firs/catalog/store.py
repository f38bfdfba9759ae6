"""The product store: one SQLite file inside the index directory.

Row `idx` is the product's label in the ANN index (the seed's ASIN_Idx / ASIN_Data).
Products that failed to fetch or decode stay in the store with their status and reason,
and no `idx`.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QueryError
from ..files import open_sqlite_readonly
from ..search.filters import Condition
from ..tagging.tagger import Tag
from ..tagging.vocabulary import labels_in_text
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
CREATE TABLE tags (
    idx INTEGER NOT NULL,
    label TEXT NOT NULL,
    source TEXT NOT NULL,
    confidence REAL NOT NULL,
    PRIMARY KEY (idx, label)
);
CREATE VIRTUAL TABLE products_text USING fts5(title, brand, categories, tags, tokenize='porter unicode61');
"""
# Columns a --where condition can name directly; any other field is looked up in metadata.
_FIELD_COLUMNS = {"id": "id", "title": "title", "brand": "brand", "price": "price"}
# Fields that also match the labels of the tagger (a product with no `colour` metadata may
# still be tagged colour:red from its picture).
_TAG_FIELDS = {"type": "type", "colour": "colour", "color": "colour", "region": "region"}
_SQL_OPS = {"=": "=", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
_STOPWORDS = frozenset(
    ["a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or", "the", "to", "with"]
)
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
        return cls(open_sqlite_readonly(path, "products", "product store"))

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

    def add_tags(self, tags: dict[int, list[Tag]]) -> None:
        """Labels per ANN label, and the text index over title, brand, categories and labels."""
        with self.db:
            self.db.executemany(
                "INSERT INTO tags (idx, label, source, confidence) VALUES (?, ?, ?, ?)",
                ((idx, t.label, t.source, t.confidence) for idx, ts in tags.items() for t in ts),
            )
            rows = self.db.execute("SELECT idx, title, brand, categories FROM products WHERE idx IS NOT NULL")
            self.db.executemany(
                "INSERT INTO products_text (rowid, title, brand, categories, tags) VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        idx,
                        title,
                        brand,
                        " ".join(json.loads(categories)),
                        _label_words(tags.get(idx, [])),
                    )
                    for idx, title, brand, categories in rows.fetchall()
                ],
            )

    def tags_of(self, labels: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        marks = ",".join("?" * len(labels))
        rows = self.db.execute(
            f"SELECT idx, label, source, confidence FROM tags WHERE idx IN ({marks}) ORDER BY idx, confidence DESC",
            [int(x) for x in labels],
        ).fetchall()
        out: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            out.setdefault(row["idx"], []).append(
                {"label": row["label"], "source": row["source"], "confidence": round(row["confidence"], 3)}
            )
        return out

    def worn_product(self) -> str | None:
        """The id of a product the localiser found worn by a person, if any."""
        row = self.db.execute(
            "SELECT p.id FROM tags t JOIN products p ON p.idx = t.idx WHERE t.source = 'region' LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    @cached_property
    def fields(self) -> frozenset[str]:
        """Every field a filter can name: the fixed columns, category, and every metadata key.
        Read once: search opens the store read-only, so the keys cannot change under it."""
        keys = self.db.execute("SELECT DISTINCT key FROM products, json_each(products.metadata)").fetchall()
        return frozenset({*_FIELD_COLUMNS, "category", *_TAG_FIELDS, *(row[0] for row in keys)})

    def where(self, conditions: Sequence[Condition]) -> np.ndarray:
        """ANN labels of the indexed products meeting every condition (all of them when none)."""
        clauses, params = ["idx IS NOT NULL"], []
        known = self.fields
        for c in conditions:
            if c.field not in known:
                raise QueryError(f"filter {c}: no product has a field {c.field!r} (fields: {', '.join(sorted(known))})")
            op = _SQL_OPS[c.op]
            if c.field == "price":
                clauses.append(f"price IS NOT NULL AND price {op} ?")
                params.append(c.value)
                continue
            if c.field in _TAG_FIELDS:
                test = (
                    "(lower(CAST(json_extract(metadata, ?) AS TEXT)) = lower(?)"
                    " OR idx IN (SELECT idx FROM tags WHERE label = ?))"
                )
                clauses.append(test if op == "=" else f"NOT {test}")
                params += [f'$."{c.field}"', str(c.value), _tag_label(_TAG_FIELDS[c.field], str(c.value))]
                continue
            if c.field == "category":
                test = "EXISTS (SELECT 1 FROM json_each(products.categories) WHERE lower(value) = lower(?))"
                clauses.append(test if op == "=" else f"NOT {test}")
            elif c.field in _FIELD_COLUMNS:
                clauses.append(f"lower({_FIELD_COLUMNS[c.field]}) {op} lower(?)")
            else:
                clauses.append(f"lower(CAST(json_extract(metadata, ?) AS TEXT)) {op} lower(?)")
                params.append(f'$."{c.field}"')
            params.append(str(c.value))
        rows = self.db.execute(f"SELECT idx FROM products WHERE {' AND '.join(clauses)}", params).fetchall()
        return np.array(sorted(row[0] for row in rows), dtype=np.int64)

    def text_matches(self, text: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """ANN labels whose title, brand, categories or labels match any word of `text`, best
        (BM25) first, with BM25 scores (higher is better)."""
        words = [w for w in _words(text) if w not in _STOPWORDS]
        if not words:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        query = " OR ".join(f'"{w}"' for w in words)
        sql = "SELECT rowid, bm25(products_text) FROM products_text WHERE products_text MATCH ? ORDER BY 2"
        rows = self.db.execute(sql + (f" LIMIT {int(limit)}" if limit else ""), (query,)).fetchall()
        return np.array([r[0] for r in rows], np.int64), np.array([-r[1] for r in rows], np.float32)

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

    def ids_by_label(self) -> list[str]:
        """The indexed products' ids in ANN-label order."""
        return [row[0] for row in self.db.execute("SELECT id FROM products WHERE idx IS NOT NULL ORDER BY idx")]

    def label_of(self, product_id: str) -> int | None:
        row = self.db.execute("SELECT idx FROM products WHERE id = ?", (product_id,)).fetchone()
        return None if row is None else row[0]


def _label_words(tags: list[Tag]) -> str:
    """What a product's type and colour labels add to its searchable text."""
    return " ".join(t.label.split(":", 1)[1] for t in tags if not t.label.startswith("region:"))


def _tag_label(kind: str, value: str) -> str:
    """`colour`, `navy` -> `colour:blue`: the vocabulary's name for a word, else the word."""
    named = [label for label in labels_in_text(value) if label.startswith(f"{kind}:")]
    return named[0] if named else f"{kind}:{value.strip().lower()}"


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


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
        image=public_image(row["image_source"]),
        status=row["status"],
    )
    return record


def public_image(source: str) -> str:
    """A product's image as answers show it: its web address, never a path on this machine."""
    return source if source.startswith(("http://", "https://")) else ""

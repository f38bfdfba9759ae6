"""The product store: one SQLite file inside the index directory.

Row `idx` is the product's label in the ANN index (the seed's ASIN_Idx / ASIN_Data).
Products that failed to fetch or decode stay in the store with their status and reason,
and no `idx`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QueryError
from ..files import SharedConnection, open_sqlite_readonly, open_sqlite_writable
from ..search.filters import Condition, fold
from ..tagging.tagger import Tag
from ..tagging.vocabulary import labels_in_text
from .fields import product_url
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
# What `firs add`/`remove` change after the build (pipeline/live_update.py): the raw features
# and picture labels of products added since (a shard row each, until `firs compact` writes
# them into a shard), the ANN labels no product owns any more, and a generation counter that
# readers poll to know the store changed.
LIVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS live_rows (
    idx INTEGER PRIMARY KEY, id TEXT NOT NULL, note TEXT NOT NULL, labels TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS live_features (
    idx INTEGER NOT NULL, name TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (idx, name)
);
CREATE TABLE IF NOT EXISTS hidden (idx INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS live_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# Columns a --where condition can name directly; any other field is looked up in metadata.
_FIELD_COLUMNS = {"id": "id", "title": "title", "brand": "brand", "price": "price"}
# Fields that also match the labels of the tagger (a product with no `colour` metadata may
# still be tagged colour:red from its picture).
_TAG_FIELDS = {"type": "type", "colour": "colour", "color": "colour", "region": "region"}
# Metadata keys a field is also read from: a catalogue spells colour either way.
_SPELLINGS = {"colour": ("colour", "color"), "color": ("colour", "color")}
# The fields the page offers as choices (facets), with the price range.
FACETS = ("brand", "category", "colour")
FACET_VALUES = 200  # the most common values a facet lists
# After `firs add`/`remove`, facet values are read again at most this often: reading them from a
# million products takes ~9 s (values added since match by their exact spelling until then).
VALUES_MAX_AGE_S = 300.0
VALUES_SLICE = 5_000  # products a facet-value query reads at a time
FOLDED_FIELDS = frozenset({*FACETS, *_TAG_FIELDS})  # filters matching whatever the spelling
_SQL_OPS = {"=": "=", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
_STOPWORDS = frozenset(
    ["a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or", "the", "to", "with"]
)
_COLUMNS = "id, idx, title, brand, categories, price, image_source, image_path, status, reason, metadata"


@dataclass(frozen=True)
class FieldValue:
    key: str  # the value as filters compare it (search/filters.fold)
    shown: str  # one of its spellings in the catalogue
    products: int  # indexed products that have it
    spellings: tuple[str, ...]  # every spelling in the catalogue ("T-Shirts", "Tshirts")


@dataclass(frozen=True)
class LiveSnapshot:
    generation: int
    hidden: np.ndarray  # ANN labels no product owns any more
    labels: np.ndarray  # labels of the products added since the build, ascending
    features: dict[str, np.ndarray]  # shard column -> (len(labels), dim) raw features, rows as `labels`
    tags: list[tuple[str, int]]  # (label, ANN label) of the products added since the build


@contextmanager
def _read_transaction(db: SharedConnection) -> Iterator[None]:
    with db.lock:
        db.execute("BEGIN")
        try:
            yield
        finally:
            db.execute("COMMIT")


def _prepared(db: sqlite3.Connection) -> sqlite3.Connection:
    db.row_factory = sqlite3.Row
    db.create_function("fold", 1, lambda value: fold(str(value)) if value else "", deterministic=True)
    return db


class ProductStore:
    """Write once at build time, then open read-only for search (by several threads at once:
    files.SharedConnection)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.db = SharedConnection(_prepared(connection))
        self._values: dict[str, dict[str, FieldValue]] = {}  # field -> folded value -> it, most common first
        self._values_read, self._values_stale = 0.0, False
        self._values_lock = threading.Lock()

    @classmethod
    def create(cls, path: Path) -> ProductStore:
        db = sqlite3.connect(path)
        db.executescript(SCHEMA)
        return cls(db)

    @classmethod
    def open_readonly(cls, path: Path) -> ProductStore:
        return cls(open_sqlite_readonly(path, "products", "product store"))

    @classmethod
    def open_writable(cls, path: Path) -> ProductStore:
        """A built store opened for `firs add`/`remove`: write-ahead logging, so that readers
        (a running `firs serve`) are never blocked and see each change whole."""
        db = open_sqlite_writable(path, "products", "product store")
        db.executescript(LIVE_SCHEMA)
        return cls(db)

    # -- changes after the build ------------------------------------------------------------

    def generation(self) -> int:
        """How many changes `firs add`/`remove` made (0 for a store as built)."""
        try:
            row = self.db.execute("SELECT value FROM live_state WHERE key = 'generation'").fetchone()
        except sqlite3.OperationalError:  # a store as built has no live tables
            return 0
        return int(row[0]) if row else 0

    def live_snapshot(self) -> LiveSnapshot:
        """The generation, hidden labels and added products' raw features, read in one transaction."""
        if not self._has_live_tables():
            return LiveSnapshot(0, np.zeros(0, np.int64), np.zeros(0, np.int64), {}, [])
        with _read_transaction(self.db):
            generation = self.generation()
            hidden = np.array([r[0] for r in self.db.execute("SELECT idx FROM hidden ORDER BY idx")], np.int64)
            labels = np.array([r[0] for r in self.db.execute("SELECT idx FROM live_rows ORDER BY idx")], np.int64)
            features: dict[str, list[np.ndarray]] = {}
            for name, blob in self.db.execute("SELECT name, vector FROM live_features ORDER BY name, idx"):
                features.setdefault(name, []).append(np.frombuffer(blob, np.float32))
            tags = self.db.execute("SELECT label, idx FROM tags WHERE idx IN (SELECT idx FROM live_rows)").fetchall()
        stacked = {k: np.stack(v) for k, v in features.items()}
        return LiveSnapshot(generation, hidden, labels, stacked, [(str(a), int(b)) for a, b in tags])

    def live_rows(self) -> list[tuple[int, str, str, list[dict[str, object]]]]:
        """(label, id, note, picture labels) of the products added since the build, by label."""
        if not self._has_live_tables():
            return []
        rows = self.db.execute("SELECT idx, id, note, labels FROM live_rows ORDER BY idx").fetchall()
        return [(int(idx), str(pid), str(note), json.loads(labels)) for idx, pid, note, labels in rows]

    def _has_live_tables(self) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'live_state'").fetchone() is not None

    def _next_label(self) -> int:
        row = self.db.execute(
            "SELECT max(coalesce((SELECT max(idx) FROM products), -1), coalesce((SELECT max(idx) FROM hidden), -1))"
        ).fetchone()
        return int(row[0]) + 1

    def _hide(self, label: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO hidden (idx) VALUES (?)", (label,))
        for table in ("tags", "live_rows", "live_features"):
            self.db.execute(f"DELETE FROM {table} WHERE idx = ?", (label,))
        self.db.execute("DELETE FROM products_text WHERE rowid = ?", (label,))

    def _bump(self) -> None:
        self.db.execute(
            "INSERT INTO live_state (key, value) VALUES ('generation', 1)"
            " ON CONFLICT(key) DO UPDATE SET value = value + 1"
        )

    def add_live(
        self,
        products: Sequence[Product],
        rows: Sequence[tuple[str, str, list[dict[str, object]]]],
        features: dict[str, np.ndarray],
        tags: Sequence[list[Tag]],
    ) -> None:
        """Products embedded after the build, in one transaction: each gets the next free ANN
        label; a known id gives up its old label (hidden) for the new one."""
        with self.db:
            label = self._next_label()
            for number, (product, (product_id, note, picture_labels), product_tags) in enumerate(
                zip(products, rows, tags, strict=True)
            ):
                old = self.label_of(product_id)
                if old is not None:
                    self._hide(old)
                self.db.execute(
                    "INSERT INTO products (id, idx, title, brand, categories, price, image_source, status, origin,"
                    " metadata) VALUES (?, ?, ?, ?, ?, ?, ?, 'indexed', ?, ?) ON CONFLICT(id) DO UPDATE SET"
                    " idx = excluded.idx, title = excluded.title, brand = excluded.brand,"
                    " categories = excluded.categories, price = excluded.price, image_source = excluded.image_source,"
                    " image_path = NULL, status = 'indexed', reason = NULL, origin = excluded.origin,"
                    " metadata = excluded.metadata",
                    (
                        product.id,
                        label,
                        product.title,
                        product.brand,
                        json.dumps(product.categories),
                        product.price,
                        product.image,
                        product.origin,
                        json.dumps(product.metadata, ensure_ascii=False),
                    ),
                )
                self.db.executemany(
                    "INSERT INTO tags (idx, label, source, confidence) VALUES (?, ?, ?, ?)",
                    [(label, t.label, t.source, t.confidence) for t in product_tags],
                )
                self.db.execute(
                    "INSERT INTO products_text (rowid, title, brand, categories, tags) VALUES (?, ?, ?, ?, ?)",
                    (label, product.title, product.brand, " ".join(product.categories), _label_words(product_tags)),
                )
                self.db.execute(
                    "INSERT INTO live_rows (idx, id, note, labels) VALUES (?, ?, ?, ?)",
                    (label, product_id, note, json.dumps(picture_labels)),
                )
                self.db.executemany(
                    "INSERT INTO live_features (idx, name, vector) VALUES (?, ?, ?)",
                    [(label, name, np.asarray(v[number], np.float32).tobytes()) for name, v in features.items()],
                )
                label += 1
            self._bump()
        self.forget_fields()

    def remove_live(self, ids: Sequence[str]) -> None:
        """Products gone from the catalogue, in one transaction: labels hidden, rows deleted."""
        with self.db:
            for product_id in ids:
                label = self.label_of(product_id)
                if label is not None:
                    self._hide(label)
                self.db.execute("DELETE FROM products WHERE id = ?", (product_id,))
            self._bump()
        self.forget_fields()

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

    def values(self, field: str) -> list[FieldValue]:
        """Each value of `field` among the indexed products, most common first, as filters
        compare it (search/filters.fold), with its spellings in the catalogue."""
        return list(self._values_by_key(field).values())

    def _values_by_key(self, field: str) -> dict[str, FieldValue]:
        with self._values_lock:  # two first visitors at once: one scan
            now = time.monotonic()
            if self._values_stale and now - self._values_read > VALUES_MAX_AGE_S:
                self._values.clear()
                self._values_stale = False
            if field not in self._values:
                self._values[field] = {v.key: v for v in self._read_values(field)}
                self._values_read = now
            return self._values[field]

    def _read_values(self, field: str) -> list[FieldValue]:
        """Read in slices of VALUES_SLICE products: the connection is shared by the service's
        threads, and at a million products the whole scan takes seconds that searches would wait."""
        sql, params = _values_sql(field)
        found: dict[str, tuple[set[str], int]] = {}
        top = self.db.execute("SELECT max(idx) FROM products").fetchone()[0]
        for start in range(0, (top if top is not None else -1) + 1, VALUES_SLICE):
            bounded = [value for own in params for value in (*own, start, start + VALUES_SLICE)]
            for key, spellings, products in self.db.execute(sql, bounded):
                seen, count = found.get(key, (set(), 0))
                found[key] = (seen | set(json.loads(spellings)), count + products)
        ordered = sorted(found.items(), key=lambda item: (-item[1][1], item[0]))
        return [FieldValue(key, min(seen), count, tuple(sorted(seen))) for key, (seen, count) in ordered]

    def facets(self) -> dict[str, Any]:
        """What the page offers as filter choices: each facet's most common values with product
        counts, and the price range (None when no product has a price)."""
        low, high, priced = self.db.execute(
            "SELECT min(price), max(price), count(price) FROM products WHERE idx IS NOT NULL"
        ).fetchone()
        return {
            "fields": {
                name: [{"value": v.shown, "products": v.products} for v in self.values(name)[:FACET_VALUES]]
                for name in FACETS
            },
            "price": {"min": low, "max": high, "products": priced} if priced else None,
        }

    def _spellings(self, field: str, value: str) -> list[str]:
        """The catalogue's own spellings of `value` for `field` ("T-shirts" -> "Tshirts"), the
        value itself when the catalogue has none like it."""
        found = self._values_by_key(field).get(fold(value))
        return list(found.spellings) if found else [value]

    def where(self, conditions: Sequence[Condition]) -> np.ndarray:
        """ANN labels of the indexed products meeting every condition (all of them when none).
        Facet values (brand, category, colour, type) match as search/filters.fold compares them:
        "t-shirt" finds "Tshirts"; other fields ignore case only."""
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
            if c.field in ("id", "title"):
                clauses.append(f"lower({_FIELD_COLUMNS[c.field]}) {op} lower(?)")
                params.append(str(c.value))
                continue
            # Folded for the facet fields only: every other field's values are not kept in memory
            # (a filter on a free-text field must not make the store cache a million values).
            tolerant = c.field in FOLDED_FIELDS
            spelt = self._spellings(c.field, str(c.value)) if tolerant else [str(c.value)]
            spellings = [s.lower() for s in spelt]
            marks = ",".join("?" * len(spellings))
            if c.field == "category":
                test = f"EXISTS (SELECT 1 FROM json_each(products.categories) WHERE lower(value) IN ({marks}))"
                params += spellings
            elif c.field in _FIELD_COLUMNS:
                test = f"lower({_FIELD_COLUMNS[c.field]}) IN ({marks})"
                params += spellings
            else:
                tests = []
                for key in _SPELLINGS.get(c.field, (c.field,)):
                    tests.append(f"lower(CAST(json_extract(metadata, ?) AS TEXT)) IN ({marks})")
                    params += [f'$."{key}"', *spellings]
                if c.field in _TAG_FIELDS:
                    tests.append("idx IN (SELECT idx FROM tags WHERE label = ?)")
                    params.append(_tag_label(_TAG_FIELDS[c.field], str(c.value)))
                test = "(" + " OR ".join(tests) + ")"
            clauses.append(test if op == "=" else f"NOT {test}")
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
        """Products for ANN labels, in the order given (labels no product owns are left out)."""
        found = self.records_by_label(labels)
        return [found[int(label)] for label in labels if int(label) in found]

    def records_by_label(self, labels: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Products for ANN labels, by label."""
        if not labels:
            return {}
        marks = ",".join("?" * len(labels))
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM products WHERE idx IN ({marks})", [int(x) for x in labels]
        ).fetchall()
        return {row["idx"]: _row_dict(row) for row in rows}

    def get(self, product_id: str) -> dict[str, Any] | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM products WHERE id = ?", (product_id,)).fetchone()
        return _row_dict(row) if row else None

    def ids_by_label(self) -> list[str]:
        """The indexed products' ids in ANN-label order."""
        return [row[0] for row in self.db.execute("SELECT id FROM products WHERE idx IS NOT NULL ORDER BY idx")]

    def labels_by_id(self) -> dict[str, int]:
        """Every indexed product's ANN label, by id (one query, where `label_of` is one a product)."""
        return dict(self.db.execute("SELECT id, idx FROM products WHERE idx IS NOT NULL").fetchall())

    def forget_fields(self) -> None:
        """The filterable fields are read again on next use (products with new metadata keys came in)."""
        self.__dict__.pop("fields", None)
        self._values_stale = True  # read again, but not at every change: a scan of a million products takes seconds

    def label_of(self, product_id: str) -> int | None:
        row = self.db.execute("SELECT idx FROM products WHERE id = ?", (product_id,)).fetchone()
        return None if row is None else row[0]


def _values_sql(field: str) -> tuple[str, list[list[Any]]]:
    """The SQL that groups one slice of products by a field's folded values, and each row
    source's own parameters (the slice's bounds, idx >= ? AND idx < ?, follow each source's)."""
    window = "idx >= ? AND idx < ?"
    if field in ("category", "categories"):
        sources = [f"SELECT idx, j.value AS v FROM products, json_each(products.categories) j WHERE {window}"]
        params: list[list[Any]] = [[]]
    elif field in _FIELD_COLUMNS:
        sources, params = [f"SELECT idx, {_FIELD_COLUMNS[field]} AS v FROM products WHERE {window}"], [[]]
    else:
        keys = _SPELLINGS.get(field, (field,))
        sources = [
            f"SELECT idx, CAST(json_extract(metadata, ?) AS TEXT) AS v FROM products WHERE {window}" for _ in keys
        ]
        params = [[f'$."{key}"'] for key in keys]
        if field in _TAG_FIELDS:
            kind = _TAG_FIELDS[field]
            sources.append(f"SELECT idx, substr(label, ?) AS v FROM tags WHERE label LIKE ? AND {window}")
            params.append([len(kind) + 2, f"{kind}:%"])
    sql = (
        f"SELECT fold(v) AS k, json_group_array(DISTINCT v), count(DISTINCT idx) FROM ({' UNION ALL '.join(sources)}) "
        "WHERE v IS NOT NULL AND v != '' GROUP BY k HAVING k != ''"
    )
    return sql, params


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
        url=product_url(record),
        status=row["status"],
    )
    return record


def public_image(source: str) -> str:
    """A product's image as answers show it: its web address, never a path on this machine."""
    return source if source.startswith(("http://", "https://")) else ""

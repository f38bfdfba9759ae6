"""Amazon product metadata (McAuley et al.), 2014 and 2018 generations, plain or .gz.

2014: one Python dict literal per line (single quotes) -> ast.literal_eval, never eval.
2018: strict JSON lines. Both: the product id is the ASIN.
"""

from __future__ import annotations

import ast
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from .fields import clean_text, parse_price
from .problems import ProblemLog
from .product import Product

_KNOWN = {
    "asin",
    "title",
    "brand",
    "price",
    "imUrl",
    "imageURL",
    "imageURLHighRes",
    "categories",
    "category",
    "related",
    "also_buy",
    "also_view",
    "salesRank",
    "rank",
}
_TEXT_EXTRAS = ("description", "main_cat", "color", "gender", "details")


def open_text(path: Path) -> TextIO:
    """Open a text file, transparently gunzipping .gz files."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace")


def parse_record(line: str) -> dict[str, Any]:
    """A JSON object (2018) or a Python dict literal (2014)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ValueError(f"neither JSON nor a Python dict literal ({exc.__class__.__name__})") from None
    if not isinstance(record, dict):
        raise ValueError(f"a line must hold one object, found {type(record).__name__}")
    return record


def _categories(record: dict[str, Any]) -> list[str]:
    raw = record.get("categories", record.get("category"))
    if not raw:
        return []
    if isinstance(raw, str):
        raw = [raw]
    flat: list[str] = []
    for item in raw:
        for name in item if isinstance(item, list | tuple) else [item]:
            text = clean_text(name)
            if text and text not in flat:
                flat.append(text)
    return flat


def _image(record: dict[str, Any]) -> str:
    if record.get("imUrl"):
        return str(record["imUrl"]).strip()
    for key in ("imageURLHighRes", "imageURL"):
        urls = record.get(key)
        if isinstance(urls, str) and urls.strip():
            return urls.strip()
        if isinstance(urls, list):
            for url in urls:
                if isinstance(url, str) and url.strip():
                    return url.strip()
    return ""


def record_to_product(record: dict[str, Any], origin: str) -> Product:
    """One metadata record as a Product; ValueError names the bad field."""
    asin = clean_text(record.get("asin"))
    if not asin:
        raise ValueError("field 'asin' is missing or empty")
    image = _image(record)
    if not image:
        raise ValueError(f"product {asin}: no image (fields 'imUrl', 'imageURLHighRes', 'imageURL')")
    try:
        price = parse_price(record.get("price"))
    except ValueError as exc:
        raise ValueError(f"product {asin}: field 'price': {exc}") from None
    metadata: dict[str, str] = {}
    for key in _TEXT_EXTRAS:
        value = record.get(key)
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        text = clean_text(value)
        if text:
            metadata[key] = text
    for key, value in record.items():
        if key not in _KNOWN and key not in metadata and isinstance(value, str | int | float):
            metadata[key] = clean_text(value)
    return Product(
        id=asin,
        image=image,
        title=clean_text(record.get("title")),
        brand=clean_text(record.get("brand")),
        categories=_categories(record),
        price=price,
        metadata=metadata,
        origin=origin,
    )


def read_amazon(path: Path, problems: ProblemLog) -> Iterator[Product]:
    """Products of an Amazon metadata file; bad lines go to `problems`."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                yield record_to_product(parse_record(line), f"{path}:{number}")
            except ValueError as exc:
                problems.report(str(path), number, str(exc))

"""Amazon product metadata (McAuley et al.), 2014 and 2018 generations, plain or .gz.

2014: one Python dict literal per line (single quotes) -> ast.literal_eval, never eval.
2018: strict JSON lines. Both: the product id is the ASIN.
Local image paths are taken from the file's folder and must stay inside it (see paths.py).
A product's pictures (Product.images): `imUrl`, then the `imageURLHighRes` list (or `imageURL` when
that is empty), repeats removed; the first is its image. A refused extra picture is dropped and noted
(ProblemLog.note), the product kept.
"""

from __future__ import annotations

import ast
import gzip
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from .fields import clean_text, image_and_price, with_currency
from .paths import ImageRoots
from .problems import ProblemLog
from .product import Product

MAX_LINE_CHARS = 1_000_000
AMAZON_CURRENCY = "USD"  # the metadata sets are amazon.com's

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


def open_text(path: Path, newline: str | None = None) -> TextIO:
    """Open a UTF-8 text file (a leading BOM dropped), transparently gunzipping .gz files."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline=newline)
    return path.open("r", encoding="utf-8-sig", errors="replace", newline=newline)


class LineTooLong(Exception):
    """A line over the length limit; the rest of it has been read past."""

    def __init__(self, number: int, limit: int) -> None:
        super().__init__(f"line {number} is longer than {limit:,} characters")
        self.number = number


class LineReader:
    """The lines of a text handle, numbered from 1, never holding more than `limit` characters of one.

    A longer line raises LineTooLong from __next__; iteration can go on with the line after it.
    """

    def __init__(self, handle: TextIO, limit: int = MAX_LINE_CHARS) -> None:
        self.handle = handle
        self.limit = limit
        self.number = 0  # of the last line read

    def __iter__(self) -> LineReader:
        return self

    def __next__(self) -> str:
        line = self.handle.readline(self.limit + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) > self.limit and not line.endswith(("\n", "\r")):
            self._skip_rest_of_line()
            raise LineTooLong(self.number, self.limit)
        return line

    def _skip_rest_of_line(self) -> None:
        while True:
            chunk = self.handle.readline(self.limit)
            if not chunk or chunk.endswith(("\n", "\r")):
                return


def parse_record(line: str) -> dict[str, Any]:
    """A JSON object (2018) or a Python dict literal (2014); ValueError says why not."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        record = _literal(line)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except (ValueError, TypeError, MemoryError) as exc:
        raise ValueError(f"unreadable JSON ({exc.__class__.__name__}: {str(exc)[:100]})") from None
    if not isinstance(record, dict):
        raise ValueError(f"a line must hold one object, found {type(record).__name__}")
    return record


def _literal(line: str) -> Any:
    try:
        return ast.literal_eval(line)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(f"neither JSON nor a Python dict literal ({exc.__class__.__name__})") from None


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


def _strings(value: Any) -> list[str]:
    """The non-blank strings of a field holding one string or a list of them, stripped."""
    values = value if isinstance(value, list) else [value]
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _pictures(record: dict[str, Any]) -> list[str]:
    """`imUrl` (2014), then every entry of `imageURLHighRes` (2018), or of `imageURL` when that has none."""
    return _strings(record.get("imUrl")) + (_strings(record.get("imageURLHighRes")) or _strings(record.get("imageURL")))


def record_to_product(
    record: dict[str, Any], origin: str, images: ImageRoots, dropped: list[str] | None = None
) -> Product:
    """One metadata record as a Product; ValueError names the bad field.

    A local image path is taken from `images.folder` and must lie inside one of `images`' roots.
    The first picture is the product's image: when it is refused, so is the product. A later
    picture that is refused is left out, and why is added to `dropped`.
    """
    asin = clean_text(record.get("asin"))
    if not asin:
        raise ValueError("field 'asin' is missing or empty")
    pictures = _pictures(record)
    if not pictures:
        raise ValueError(f"product {asin}: no image (fields 'imUrl', 'imageURLHighRes', 'imageURL')")
    image, price = image_and_price(asin, pictures[0], record.get("price"), images)
    kept, refused = images.pictures(image, pictures[1:])
    if dropped is not None:
        dropped.extend(f"product {asin}: extra image dropped ({reason})" for reason in refused)
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
    metadata.setdefault("url", f"https://www.amazon.com/dp/{quote(asin, safe='')}")
    if price is not None:
        with_currency(metadata, record.get("price"), AMAZON_CURRENCY)
    return Product(
        id=asin,
        image=image,
        images=kept,
        title=clean_text(record.get("title")),
        brand=clean_text(record.get("brand")),
        categories=_categories(record),
        price=price,
        metadata=metadata,
        origin=origin,
    )


def read_amazon(path: Path, problems: ProblemLog, image_roots: Sequence[Path] = ()) -> Iterator[Product]:
    """Products of an Amazon metadata file; bad lines go to `problems`.

    Local images must lie in the file's folder or in one of `image_roots`.
    """
    images = ImageRoots.of(path.parent, image_roots)
    with open_text(path) as handle:
        lines = LineReader(handle)
        while True:
            try:
                line = next(lines).strip()
            except StopIteration:
                return
            except LineTooLong as exc:
                problems.report(str(path), exc.number, f"{exc}; skipped")
                continue
            if not line:
                continue
            dropped: list[str] = []
            product = _line_to_product(line, f"{path}:{lines.number}", images, dropped)
            if isinstance(product, str):
                problems.report(str(path), lines.number, product)
                continue
            for reason in dropped:
                problems.note(str(path), lines.number, reason)
            yield product


def _line_to_product(line: str, origin: str, images: ImageRoots, dropped: list[str]) -> Product | str:
    """The line's product, or why it has none; refused extra pictures are added to `dropped`."""
    try:
        return record_to_product(parse_record(line), origin, images, dropped)
    except ValueError as exc:
        return str(exc)
    except RecursionError:
        return "record nested too deeply"
    except (TypeError, MemoryError) as exc:  # a hostile record that parsed but breaks a field conversion
        return f"unreadable record ({exc.__class__.__name__}: {str(exc)[:100]})"

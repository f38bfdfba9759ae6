"""Reading one or more catalogue sources into one list of products."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from ..errors import CatalogError
from .amazon import read_amazon
from .csv_reader import read_csv
from .folder_reader import read_folder
from .problems import ProblemLog
from .product import Product

FORMATS = ("auto", "amazon", "csv", "folder")


def detect_format(path: Path) -> str:
    """'folder' for a directory, 'csv' for *.csv(.gz), otherwise 'amazon'."""
    if path.is_dir():
        return "folder"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv")):
        return "csv"
    return "amazon"


def read_source(
    path: Path,
    fmt: str,
    problems: ProblemLog,
    columns: Mapping[str, str] | None = None,
    image_roots: Sequence[Path] = (),
) -> Iterator[Product]:
    """Products of one source, in the given format ('auto' detects it).

    Local images must lie in the source's folder (the folder itself for --format folder) or in one
    of `image_roots`; others are reported and skipped.
    """
    if not path.exists():
        raise CatalogError(f"catalogue source {path} does not exist")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "folder":
        if not path.is_dir():
            raise CatalogError(f"{path}: --format folder needs a directory")
        yield from read_folder(path, problems, image_roots)
        return
    if path.is_dir():
        raise CatalogError(f"{path} is a directory; use --format folder (or auto)")
    try:
        if fmt == "csv":
            yield from read_csv(path, problems, columns, image_roots)
        elif fmt == "amazon":
            yield from read_amazon(path, problems, image_roots)
        else:
            raise CatalogError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, UnicodeError) as exc:
        raise CatalogError(f"{path}: cannot read ({exc})") from exc


def read_catalog(
    paths: list[Path],
    fmt: str = "auto",
    strict: bool = False,
    columns: Mapping[str, str] | None = None,
    image_roots: Sequence[Path] = (),
) -> tuple[list[Product], ProblemLog]:
    """All products of all sources; a product id found twice is an error naming both places.

    `image_roots` (--image-root) are folders local images may lie in besides each source's own.
    """
    problems = ProblemLog(strict=strict)
    products: dict[str, Product] = {}
    roots = [Path(root) for root in image_roots]
    for path in paths:
        for product in read_source(Path(path), fmt, problems, columns, roots):
            first = products.get(product.id)
            if first is not None:
                raise CatalogError(f"product id {product.id!r} appears twice: {first.origin} and {product.origin}")
            products[product.id] = product
    return list(products.values()), problems

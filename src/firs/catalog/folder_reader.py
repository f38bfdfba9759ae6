"""A folder of images: one product per image, id = file name stem.

Sub-folders become the category ("shoes/red-sneaker.jpg" -> category "shoes").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..errors import CatalogError
from .problems import ProblemLog
from .product import Product

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def read_folder(root: Path, problems: ProblemLog) -> Iterator[Product]:
    """Products for every image file under `root`, sorted by path."""
    seen: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            problems.report(str(path), 0, "not an image file name (skipped)")
            continue
        if path.stem in seen:
            raise CatalogError(f"product id {path.stem!r} appears twice: {seen[path.stem]} and {path}")
        seen[path.stem] = path
        relative = path.relative_to(root)
        categories = list(relative.parts[:-1])
        yield Product(
            id=path.stem,
            image=str(path.resolve()),
            title=path.stem.replace("_", " ").replace("-", " "),
            categories=categories,
            origin=str(path),
        )

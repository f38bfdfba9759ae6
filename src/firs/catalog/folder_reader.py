"""A folder of images: one product per image, id = file name stem.

Sub-folders become the category ("shoes/red-sneaker.jpg" -> category "shoes"). A file that is a
symlink to somewhere outside the folder (and outside every --image-root) is reported and skipped.
Each product has that one picture (Product.images == [image]).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import CatalogError
from .paths import ImageRoots
from .problems import ProblemLog
from .product import Product

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".hif"}


def read_folder(root: Path, problems: ProblemLog, image_roots: Sequence[Path] = ()) -> Iterator[Product]:
    """Products for every image file under `root`, sorted by path."""
    images = ImageRoots.of(root, image_roots)
    seen: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            problems.report(str(path), 0, "not an image file name (skipped)")
            continue
        resolved = _resolved(path)
        if resolved is None or not images.allows(resolved):
            target = "cannot be resolved" if resolved is None else images.refusal(str(path), resolved)
            problems.report(str(path), 0, f"symlink: {target} (skipped)")
            continue
        if path.stem in seen:
            raise CatalogError(f"product id {path.stem!r} appears twice: {seen[path.stem]} and {path}")
        seen[path.stem] = path
        relative = path.relative_to(root)
        categories = list(relative.parts[:-1])
        yield Product(
            id=path.stem,
            image=str(resolved),
            images=[str(resolved)],  # one picture per product
            title=path.stem.replace("_", " ").replace("-", " "),
            categories=categories,
            origin=str(path),
        )


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None

"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image, ImageEnhance


def transformed_copy(path: Path, out: Path) -> Path:
    """The product photographed differently: cropped, smaller, darker, JPEG-compressed."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    image = image.crop((int(w * 0.06), int(h * 0.04), int(w * 0.97), int(h * 0.95)))
    image = ImageEnhance.Brightness(image.resize((180, 170))).enhance(0.85)
    image.save(out, "JPEG", quality=80)
    return out


def catalog_ids(catalog: Path) -> list[str]:
    with catalog.open() as handle:
        return [row["id"] for row in csv.DictReader(handle)]

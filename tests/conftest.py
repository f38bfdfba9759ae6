"""Shared fixtures: generated images and catalogues, one embedder per test session."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from PIL import Image

from firs.demo.garments import catalogue_specs, draw_garment
from firs.pipeline.build import BuildOptions, build_index
from firs.vision.embedder import Embedder


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(threads=2)


@pytest.fixture(scope="session")
def garment_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV catalogue of 24 drawn garments with metadata; returns the CSV path."""
    folder = tmp_path_factory.mktemp("catalog")
    (folder / "img").mkdir()
    path = folder / "catalog.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image", "title", "brand", "category", "color", "price"])
        for number, spec in enumerate(catalogue_specs()[::2][:24]):
            draw_garment(spec).save(folder / "img" / f"{spec.product_id}.png")
            writer.writerow(
                [
                    spec.product_id,
                    f"img/{spec.product_id}.png",
                    spec.title,
                    "Acme",
                    spec.kind,
                    spec.colour,
                    f"{10 + number}.50",
                ]
            )
    return path


@pytest.fixture(scope="session")
def garment_index(garment_catalog: Path, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    out = tmp_path_factory.mktemp("indexes") / "garments"
    build_index([garment_catalog], out, BuildOptions(progress=False, cache_dir=out.parent / "cache"), embedder)
    return out

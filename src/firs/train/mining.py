"""Pairs from the catalogue itself, for `firs train` without `--queries`.

A shop rarely has street photos paired with its products, but many products have several
pictures, some worn by a model and some flat. Every picture of a product beyond the one the
index shows is a candidate query of that product; the localiser keeps those that show a
person (train/features.py). A catalogue with no worn picture at all falls back to synthetic
pairs: each product's own shot against made-up worn and street versions of it.
"""

from __future__ import annotations

from pathlib import Path

from ..catalog.fetch import ImageFetcher
from ..catalog.product import Product
from .pairs import SYNTHETIC, WORN, Pair


def picture_pairs(
    products: list[Product], fetcher: ImageFetcher, progress: bool = True
) -> tuple[list[Pair], dict[str, str]]:
    """Each product's other pictures as WORN candidate pairs, fetched; and the failed ones' reasons."""
    owners: dict[str, str] = {}
    items = []
    for product in products:
        for number, source in enumerate(product.images[1:], start=2):
            key = f"{product.origin or product.id} picture {number}"
            owners[key] = product.id
            items.append((key, source))
    if not items:
        return [], {}
    fetched = fetcher.fetch_pictures(items, progress, desc="fetch other pictures")
    pairs = [Pair(Path(r.path), owners[k], k, WORN) for k, r in fetched.items() if r.path is not None]
    failures = {k: r.error or "fetch failed" for k, r in fetched.items() if r.path is None}
    return sorted(pairs, key=lambda p: p.origin), failures


def synthetic_pairs(products: list[Product], paths: dict[str, str]) -> list[Pair]:
    """Each product whose picture works, paired with made-up versions of itself."""
    return [
        Pair(Path(paths[p.id]), p.id, f"{p.origin or p.id} synthetic", SYNTHETIC) for p in products if p.id in paths
    ]

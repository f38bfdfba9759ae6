"""Frozen-backbone features for training, computed once and cached in the model folder.

Catalogue side: each product's fine view, made exactly as `firs build` makes it. Query side:
the garment the localiser cuts out of the query photo (in the region the product's category
names), then `views - 1` street versions: the photo's person in a street scene, cut out again,
or the cut-out altered (train/augment.py). A mined picture
(pairs.WORN) where the localiser finds no person is not a query and fails; a synthetic pair
has no clean view: all its views are street versions of a worn version of the product shot.
Pose, masks and the backbone are the expensive part and do not change between epochs, so
they run here once.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..catalog.fetch import FetchPolicy, ImageFetcher
from ..catalog.product import Product
from ..errors import ImageError
from ..pipeline.embed_stage import Prepared, embed_images
from ..pipeline.partition import catalogue_loader
from ..pipeline.views import FINE_RESIZE, FINE_VIEW_VERSION, fine_view, region_for_categories
from ..vision.backbone_tail import TRUNK_BLOCKS
from ..vision.decode import load_image
from ..vision.embedder import Embedder
from ..vision.localiser import GarmentLocaliser
from .augment import AUGMENTATIONS, street_scene, street_view, worn_view
from .pairs import SYNTHETIC, WORN, Pair

OCCLUDERS = 48  # catalogue pictures that may stand in front of a query's garment


@dataclass
class CatalogueFeatures:
    ids: list[str]
    features: np.ndarray  # (n, 1280) float32, the fine view
    failures: dict[str, str]


@dataclass
class QueryFeatures:
    pairs: list[Pair]
    features: np.ndarray  # (n, views, 1280) float32; view 0 the clean cut-out
    failures: dict[str, str]  # pair origin -> reason


def fingerprint(parts: object) -> str:
    """A short, stable digest of JSON-able data: cache keys and the model's data fingerprint."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _TrunkMaps:
    """Looks like an Embedder to embed_images; its features are the trunk's maps (float16),
    the inputs of a tuned tail (vision/backbone_tail.py)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def prepare(self, image: Image.Image, resize: str | None = None) -> np.ndarray:
        return self.embedder.prepare(image, resize)

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.embedder.trunk(batch).astype(np.float16), np.zeros((len(batch), 0), np.float32)


def _network(embedder: Embedder, maps: bool) -> tuple[Any, str]:
    """What computes the cached inputs, and its part of the cache key."""
    if maps:
        return _TrunkMaps(embedder), f"trunk{TRUNK_BLOCKS}"
    return embedder, "pooled"


def _loaded(values: np.ndarray, maps: bool) -> np.ndarray:
    """What training gets, as the cache holds it (float16) whether just computed or read back:
    otherwise a first run and its rerun from the cache would train on different numbers."""
    values = values.astype(np.float16, copy=False)
    return values if maps else values.astype(np.float32)


def _file_key(path: str) -> list[object]:
    try:
        info = Path(path).stat()
        return [path, info.st_size, int(info.st_mtime)]
    except OSError:
        return [path, None, None]


def _cached(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError):
        return None  # a cache cut short by a crash: compute again


def _store(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.npz")
    np.savez(partial, **arrays)
    partial.replace(path)


def catalogue_features(
    products: list[Product],
    embedder: Embedder,
    localiser: GarmentLocaliser,
    cache: Path,
    image_cache: Path,
    fetch: FetchPolicy | None = None,
    progress: bool = True,
    maps: bool = False,
) -> tuple[CatalogueFeatures, dict[str, str]]:
    """Fine-view features (`maps`: trunk maps) of every product whose image works; also
    returns id -> local image path."""
    fetched = ImageFetcher(image_cache, fetch).fetch_all(products, progress)
    failures = {p.id: fetched[p.id].error or "fetch failed" for p in products if fetched[p.id].path is None}
    paths = {p.id: str(fetched[p.id].path) for p in products if fetched[p.id].path is not None}
    network, kind = _network(embedder, maps)
    key = fingerprint(
        [
            embedder.identity["weights_sha256"],
            embedder.spec.resample,
            "fine",
            FINE_VIEW_VERSION,
            localiser.work_side,  # the size at which a worn picture is cut out
            kind,
            sorted([*_file_key(v), k] for k, v in paths.items()),
            sorted((p.id, region_for_categories(p.categories)) for p in products),  # where a worn picture is cut
        ]
    )
    target = cache / f"catalogue-{key}.npz"
    stored = _cached(target)
    if stored is not None and "failed" in stored:  # caches made before they kept the failures: made again
        ids = [str(x) for x in stored["ids"]]
        failures.update(zip((str(o) for o in stored["failed"]), (str(r) for r in stored["reasons"]), strict=True))
        return CatalogueFeatures(ids, _loaded(stored["features"], maps), failures), paths
    load = catalogue_loader(embedder, localiser, {p.id: p.categories for p in products}, fine_only=True)
    embedded = embed_images(list(paths.items()), network, load, progress=progress, desc="catalogue features")
    failures.update(embedded.failures)
    features = embedded.features.get("fine", np.zeros((0, 1280), np.float32))
    _store(
        target,
        ids=np.array(embedded.ids),
        features=features.astype(np.float16),
        failed=np.array(list(embedded.failures), dtype=str),
        reasons=np.array(list(embedded.failures.values()), dtype=str),
    )
    return CatalogueFeatures(embedded.ids, _loaded(features, maps), failures), paths


def occluder_pictures(paths: list[str], seed: int) -> list[Image.Image]:
    chosen = random.Random(seed).sample(paths, min(OCCLUDERS, len(paths)))
    pictures = []
    for path in chosen:
        try:
            picture = load_image(path)
        except Exception:  # an unusable occluder is simply not used
            continue
        picture.thumbnail((160, 160))
        pictures.append(picture)
    return pictures


def query_features(
    pairs: list[Pair],
    categories: dict[str, list[str]],
    embedder: Embedder,
    localiser: GarmentLocaliser,
    cache: Path,
    occluder_paths: list[str],
    views: int,
    seed: int = 0,
    augmentations: tuple[str, ...] = AUGMENTATIONS,
    progress: bool = True,
    maps: bool = False,
    scenes: bool = False,
) -> QueryFeatures:
    """The garment cut out of each query photo, clean and in `views - 1` street versions;
    their features, or with `maps` their trunk maps. With `scenes` a photo's street versions
    are its person put into a street scene and cut out again by the localiser (augment.street_scene);
    without, or where the localiser finds no person in the scene, the cut-out altered."""
    network, kind = _network(embedder, maps)
    region_of = {p.origin: region_for_categories(categories.get(p.product_id, [])) for p in pairs}  # cut from
    key = fingerprint(
        [
            embedder.identity["weights_sha256"],
            embedder.spec.resample,
            kind,
            FINE_VIEW_VERSION,  # synthetic pairs start from the product's fine view
            localiser.work_side,
            views,
            seed,
            sorted(augmentations),
            [[*_file_key(str(p.query)), p.kind, region_of[p.origin]] for p in pairs],
            *(["scenes"] if scenes else []),  # keys made before scenes existed stay valid
        ]
    )
    target = cache / f"queries-{key}.npz"
    stored = _cached(target)
    by_origin = {p.origin: p for p in pairs}
    if stored is not None and not {str(o) for o in [*stored["origins"], *stored["failed"]]} <= by_origin.keys():
        stored = None  # the same photos under other names: their augmentations were drawn for those names
    if stored is not None:
        kept = [by_origin[str(o)] for o in stored["origins"]]
        failed = dict(zip((str(o) for o in stored["failed"]), (str(r) for r in stored["reasons"]), strict=True))
        return QueryFeatures(kept, _loaded(stored["features"], maps), failed)
    occluders = occluder_pictures(occluder_paths, seed)

    def load(origin: str, path: str) -> Prepared:
        pair = by_origin[origin]
        image = load_image(path)
        rng = random.Random(f"{seed}:{origin}")
        if pair.kind == SYNTHETIC:
            shot = fine_view(image, categories.get(pair.product_id, []), localiser)[0]
            cuts = [street_view(worn_view(shot, rng, occluders), rng, occluders, augmentations) for _ in range(views)]
            return Prepared({f"v{n}": embedder.prepare(cut, FINE_RESIZE) for n, cut in enumerate(cuts)}, "synthetic")
        located = localiser.locate(image, region=region_of[origin], strict=False)
        if pair.kind == WORN and located.fallback is not None:
            raise ImageError(f"{path}: no person wears it, so it is not a street-like query")
        cut = located.items[0].view
        arrays = {"v0": embedder.prepare(cut, FINE_RESIZE)}
        for number in range(1, views):
            street = None
            if scenes and located.pose is not None:
                scene, (left, top, right, bottom) = street_scene(image, located.pose.mask, rng, occluders)
                found = localiser.locate(scene, region=region_of[origin], strict=False)
                x0, y0, x1, y1 = found.items[0].region.box
                if found.fallback is None and left <= (x0 + x1) / 2 <= right and top <= (y0 + y1) / 2 <= bottom:
                    street = found.items[0].view  # not another person of the scene's
            if street is None:
                street = street_view(cut, rng, occluders, augmentations)
            arrays[f"v{number}"] = embedder.prepare(street, FINE_RESIZE)
        return Prepared(arrays, located.fallback or "worn")

    items = [(p.origin, str(p.query)) for p in pairs]
    embedded = embed_images(items, network, load, progress=progress, desc="query features")
    features = np.stack([embedded.features[f"v{n}"] for n in range(views)], axis=1) if embedded.ids else None
    if features is None:
        features = np.zeros((0, views, 1280), np.float32)
    failed = embedded.failures
    _store(
        target,
        origins=np.array(embedded.ids),
        features=features.astype(np.float16),
        failed=np.array(list(failed), dtype=str),
        reasons=np.array(list(failed.values()), dtype=str),
    )
    return QueryFeatures([by_origin[o] for o in embedded.ids], _loaded(features, maps), failed)

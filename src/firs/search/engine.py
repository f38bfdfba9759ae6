"""Opening an index and answering image queries: modes `simple` and `fine`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..catalog.store import ProductStore
from ..errors import FirsError, IndexFormatError
from ..index import directory as layout
from ..index.ann import AnnIndex, HnswParams
from ..index.whitening import Whitening
from ..vision.decode import decode_image, read_bytes
from ..vision.embedder import Embedder, EmbedderSpec
from ..vision.localiser import GarmentLocaliser

MODES = ("simple", "fine")
# Identity keys that must match between the index and the running embedder.
_IDENTITY_KEYS = ("model", "input_size", "resize", "pooling", "gem_p", "weights_sha256", "feature_dim")


@dataclass
class SearchAnswer:
    results: list[dict[str, Any]]
    timings_ms: dict[str, float]
    mode: str = "simple"
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, **self.extra, "results": self.results, "timings_ms": self.timings_ms}


class _Clock:
    """Per-stage wall-clock timings in milliseconds."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = round((now - self.last) * 1000, 2)
        self.last = now

    def done(self) -> dict[str, float]:
        self.stages["total"] = round((time.perf_counter() - self.start) * 1000, 2)
        return self.stages


def check_embedder(manifest: dict[str, Any], embedder: Embedder, where: Path) -> None:
    """An index built by another embedder or preprocessing is refused, naming the difference."""
    built = manifest.get("embedder", {})
    running = embedder.identity
    differences = [
        f"{key}: index {built.get(key)!r}, running {running.get(key)!r}"
        for key in _IDENTITY_KEYS
        if built.get(key) != running.get(key)
    ]
    if differences:
        raise IndexFormatError(
            f"{where} was built with a different embedder; rebuild the index or run the "
            f"matching FIRS ({'; '.join(differences)})"
        )


def spec_from_manifest(manifest: dict[str, Any], where: Path) -> EmbedderSpec:
    built = manifest.get("embedder")
    if not isinstance(built, dict):
        raise IndexFormatError(f"{where}: manifest has no embedder section")
    try:
        return EmbedderSpec(
            model=built["model"],
            input_size=int(built["input_size"]),
            resize=built["resize"],
            pooling=built["pooling"],
            gem_p=float(built["gem_p"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexFormatError(f"{where}: manifest embedder section is incomplete ({exc})") from None


@dataclass
class _View:
    whitening: Whitening
    ann: AnnIndex


class SearchEngine:
    """An opened index plus the models to query it; load once, query many times."""

    def __init__(
        self,
        index_dir: Path,
        embedder: Embedder | None = None,
        verify: bool = True,
        threads: int | None = None,
        localiser: GarmentLocaliser | None = None,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.manifest = layout.read_manifest(self.index_dir)
        views = self.manifest.get("views")
        if not isinstance(views, dict) or "simple" not in views:
            raise IndexFormatError(f"{self.index_dir}: manifest lists no search views")
        needed = [layout.STORE]
        for view in views:
            needed += [f"{layout.view_dir(view)}/{layout.WHITENING}", f"{layout.view_dir(view)}/{layout.ANN}"]
        layout.verify_files(self.index_dir, self.manifest, needed, full=verify)
        if embedder is None:
            embedder = Embedder(spec_from_manifest(self.manifest, self.index_dir), threads=threads)
        check_embedder(self.manifest, embedder, self.index_dir)
        self.embedder = embedder
        ann = self.manifest.get("ann", {})
        params = HnswParams(
            m=ann.get("m", 32), ef_construction=ann.get("ef_construction", 200), ef_search=ann.get("ef_search", 256)
        )
        count = int(self.manifest.get("counts", {}).get("indexed", 0))
        self.views: dict[str, _View] = {}
        for view, info in views.items():
            folder = self.index_dir / layout.view_dir(view)
            try:
                whitening = Whitening.load(folder / layout.WHITENING)
            except (OSError, ValueError, KeyError) as exc:
                raise IndexFormatError(f"{folder / layout.WHITENING}: unreadable ({exc})") from None
            self.views[view] = _View(whitening, AnnIndex.load(folder / layout.ANN, int(info["dim"]), count, params))
        self.store = ProductStore.open_readonly(self.index_dir / layout.STORE)
        self._localiser = localiser

    @property
    def localiser(self) -> GarmentLocaliser:
        """The pose models, loaded on first use of the fine mode, then kept."""
        if self._localiser is None:
            self._localiser = GarmentLocaliser()
        return self._localiser

    def view_resize(self, view: str) -> str:
        return str(self.manifest["views"][view].get("resize", self.embedder.spec.resize))

    def neighbours(self, vector: np.ndarray, k: int, view: str = "simple") -> list[dict[str, Any]]:
        """Top-k products for one whitened vector, with scores and metadata."""
        labels, scores = self.views[view].ann.query(vector, k)
        products = self.store.by_labels(labels[0].tolist())
        for product, score in zip(products, scores[0].tolist(), strict=True):
            product["score"] = round(float(score), 4)
        return [{"id": p.pop("id"), "score": p.pop("score"), **p} for p in products]

    def _search_view(self, image: Image.Image, view: str, k: int) -> tuple[list[dict[str, Any]], float, float]:
        """Results, embed ms and search ms for one picture in one view."""
        start = time.perf_counter()
        vector = self.views[view].whitening.apply(self.embedder.embed(image, self.view_resize(view)))
        embedded = time.perf_counter()
        results = self.neighbours(vector, k, view)
        return results, (embedded - start) * 1000, (time.perf_counter() - embedded) * 1000

    def search_image(
        self,
        image: bytes | str | Path,
        k: int = 10,
        mode: str = "simple",
        region: str = "auto",
        all_items: bool = False,
    ) -> SearchAnswer:
        """Answer one photo (bytes or a path)."""
        if mode not in MODES:
            raise FirsError(f"unknown mode {mode!r}; available: {', '.join(MODES)}")
        if k < 1:
            raise FirsError(f"top-k must be at least 1, got {k}")
        if mode == "fine" and "fine" not in self.views:
            raise FirsError(f"{self.index_dir} has no fine view; rebuild it with this FIRS")
        clock = _Clock()
        data = image if isinstance(image, bytes) else read_bytes(image)
        picture = decode_image(data, "query" if isinstance(image, bytes) else str(image))
        clock.lap("decode")
        if mode == "simple":
            results, embed_ms, search_ms = self._search_view(picture, "simple", k)
            clock.stages.update(embed=round(embed_ms, 2), search=round(search_ms, 2))
            return SearchAnswer(results=results, timings_ms=clock.done(), mode=mode)
        located = self.localiser.locate(picture, region=region, all_items=all_items)
        clock.stages.update(detect=located.detect_ms, segment=located.segment_ms)
        items, embed_total, search_total = [], 0.0, 0.0
        for item in located.items:
            results, embed_ms, search_ms = self._search_view(item.view, "fine", k)
            embed_total, search_total = embed_total + embed_ms, search_total + search_ms
            items.append({"region": item.region.as_dict(), "results": results})
        clock.stages.update(embed=round(embed_total, 2), search=round(search_total, 2))
        extra: dict[str, Any] = {"regions": [items[0]["region"]]}
        if located.fallback:
            extra["fallback"] = located.fallback
        if all_items:
            extra["items"] = items
        return SearchAnswer(results=items[0]["results"], timings_ms=clock.done(), mode=mode, extra=extra)

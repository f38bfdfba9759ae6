"""Opening an index and answering image queries (mode `simple`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog.store import ProductStore
from ..errors import FirsError, IndexFormatError
from ..index import directory as layout
from ..index.ann import AnnIndex, HnswParams
from ..index.whitening import Whitening
from ..vision.decode import decode_image, read_bytes
from ..vision.embedder import Embedder, EmbedderSpec

MODES = ("simple",)
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


class SearchEngine:
    """An opened index plus the models to query it; load once, query many times."""

    def __init__(
        self, index_dir: Path, embedder: Embedder | None = None, verify: bool = True, threads: int | None = None
    ) -> None:
        self.index_dir = Path(index_dir)
        self.manifest = layout.read_manifest(self.index_dir)
        needed = [layout.STORE, layout.WHITENING, layout.ANN]
        layout.verify_files(self.index_dir, self.manifest, needed, full=verify)
        if embedder is None:
            embedder = Embedder(spec_from_manifest(self.manifest, self.index_dir), threads=threads)
        check_embedder(self.manifest, embedder, self.index_dir)
        self.embedder = embedder
        try:
            self.whitening = Whitening.load(self.index_dir / layout.WHITENING)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFormatError(f"{self.index_dir / layout.WHITENING}: unreadable ({exc})") from None
        ann = self.manifest.get("ann", {})
        params = HnswParams(
            m=ann.get("m", 32), ef_construction=ann.get("ef_construction", 200), ef_search=ann.get("ef_search", 128)
        )
        count = int(self.manifest.get("counts", {}).get("indexed", 0))
        self.ann = AnnIndex.load(self.index_dir / layout.ANN, int(self.manifest["dim"]), count, params)
        self.store = ProductStore.open_readonly(self.index_dir / layout.STORE)

    def neighbours(self, vector: np.ndarray, k: int) -> list[dict[str, Any]]:
        """Top-k products for one whitened vector, with scores and metadata."""
        labels, scores = self.ann.query(vector, k)
        products = self.store.by_labels(labels[0].tolist())
        for product, score in zip(products, scores[0].tolist(), strict=True):
            product["score"] = round(float(score), 4)
        return [{"id": p.pop("id"), "score": p.pop("score"), **p} for p in products]

    def search_image(self, image: bytes | str | Path, k: int = 10, mode: str = "simple") -> SearchAnswer:
        """Answer one photo (bytes or a path)."""
        if mode not in MODES:
            raise FirsError(f"unknown mode {mode!r}; available: {', '.join(MODES)}")
        if k < 1:
            raise FirsError(f"top-k must be at least 1, got {k}")
        clock = _Clock()
        data = image if isinstance(image, bytes) else read_bytes(image)
        picture = decode_image(data, "query" if isinstance(image, bytes) else str(image))
        clock.lap("decode")
        vector = self.whitening.apply(self.embedder.embed(picture))
        clock.lap("embed")
        results = self.neighbours(vector, k)
        clock.lap("search")
        return SearchAnswer(results=results, timings_ms=clock.done(), mode=mode)

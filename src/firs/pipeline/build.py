"""`firs build`: catalogue sources in, an index directory out."""

from __future__ import annotations

import importlib.metadata
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..catalog.fetch import FetchPolicy
from ..catalog.product import ReadProblem
from ..catalog.sources import read_catalog
from ..catalog.store import ProductStore
from ..errors import CatalogError
from ..index import colour_fusion, shards
from ..index import directory as layout
from ..index.ann import LARGE_CATALOGUE, HnswParams, storage_for
from ..index.model_dir import HEAD, MODEL_JSON, TrainedModel
from ..index.writer_lock import command_line, writer_lock
from ..vision.compiled_net import PRECISION
from ..vision.embedder import Embedder, EmbedderSpec
from ..vision.localiser import GarmentLocaliser
from .engines import Engine, make_engine
from .index_stage import ViewSettings, index_products, index_views, store_pictures
from .partition import LEARNED_VIEW, EmbedJob, PartitionReport, load_model_for, partition
from .views import view_resize

WHITENING_DIM = 1024
LARGE_WHITENING_DIM = 256  # a large catalogue's PCA views (2 GB for a million products, docs/architecture.md)
PARTITION_SIZE = 1000  # products a partition: its features, pictures and labels are what a worker holds


@dataclass
class CatalogueReading:
    """How catalogue sources are read and their images fetched: `firs build` and `firs add`."""

    fmt: str = "auto"
    strict: bool = False
    columns: dict[str, str] = field(default_factory=dict)
    cache_dir: Path = Path.home() / ".cache" / "firs" / "images"
    fetch: FetchPolicy = field(default_factory=FetchPolicy)
    image_roots: list[Path] = field(default_factory=list)  # folders local images may lie in, besides the catalogue's
    progress: bool = True


@dataclass
class BuildOptions(CatalogueReading):
    embedder: EmbedderSpec = field(default_factory=EmbedderSpec)
    whitening_dim: int | None = None  # None: 1024, or LARGE_WHITENING_DIM for a large catalogue
    whitening_shrink: float | None = None  # None: from d/n, see index/whitening.py
    hnsw: HnswParams = field(default_factory=HnswParams)
    model: Path | None = None  # a `firs train` model: the fine view's learned heads
    colour_weight: float | None = None  # the fine view's signature; 0: none; None: as measured best with(out) a model
    batch_size: int = 32
    threads: int | None = None
    engine: str = "local"  # where the embed stage runs: local | spark (pipeline/engines.py)
    master: str | None = None  # the Spark master (local[*] by default)
    partitions: int | None = None  # None: one per PARTITION_SIZE products

    compress: str = "auto"  # the ANN's vectors: auto | none | sq8 (index/ann.py)

    def view_settings(self, products: int) -> ViewSettings:
        """The index stage's settings for a catalogue of `products`: a large one (`auto`) keeps
        fewer whitened dimensions in 8 bits each."""
        large = self.compress == "auto" and products >= LARGE_CATALOGUE
        dim = self.whitening_dim or (LARGE_WHITENING_DIM if large else WHITENING_DIM)
        hnsw = replace(self.hnsw, storage=storage_for(self.compress, products))
        weight = (
            colour_fusion.default_weight(self.model is not None) if self.colour_weight is None else self.colour_weight
        )
        return ViewSettings(dim, self.whitening_shrink, weight, hnsw)


@dataclass
class BuildReport:
    read: int = 0
    indexed: int = 0
    skipped: int = 0
    failed: int = 0
    problems: list[ReadProblem] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # product id -> reason
    seconds: dict[str, float] = field(default_factory=dict)
    views: dict[str, int] = field(default_factory=dict)  # how catalogue images were seen: counts
    worker_seconds: dict[str, float] = field(default_factory=dict)  # the partitions' fetch and embed, summed

    def failure_reasons(self) -> Counter[str]:
        """Failures grouped by the reason's kind (the text after the image name)."""
        return Counter(_reason_kind(reason) for reason in self.failures.values())

    def skip_reasons(self) -> Counter[str]:
        return Counter(_reason_kind(problem.reason) for problem in self.problems)


def _reason_kind(reason: str) -> str:
    text = reason.split(": ", 1)[1] if reason.startswith(("/", "http", "product ")) and ": " in reason else reason
    return text.split(" (")[0][:80]


def copy_model(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_JSON, HEAD):
        shutil.copyfile(source / name, target / name)


def model_section(model: TrainedModel, folder: Path) -> dict[str, object]:
    """The manifest's record of the model copied into the index at `folder`."""
    return {
        "sha256": TrainedModel.digest(folder),
        "dim": model.dim,
        "view": LEARNED_VIEW,
        "tuned_blocks": model.tuned_blocks,
        "members": model.members,
        "trained_on": model.info.get("trained_on", {}),
        "best_epoch": model.info.get("best_epoch"),
    }


def network_section(embedder: Embedder, staging: Path) -> dict[str, object]:
    """The embedder's converted pieces saved into the index, and the manifest's word on them."""
    pieces = embedder.save_network(staging / layout.NETWORK)
    if not pieces:
        return {}
    return {
        "network": {
            "runtime": embedder.runtime,
            "version": importlib.metadata.version("openvino"),
            "precision": PRECISION,
            "pieces": pieces,
        }
    }


def _partition_count(options: BuildOptions, products: int, engine: Engine) -> int:
    if options.partitions is not None:
        if options.partitions < 1:
            raise CatalogError(f"--partitions must be at least 1, not {options.partitions}")
        return min(options.partitions, products)
    return min(products, max(-(-products // PARTITION_SIZE), engine.min_partitions))


def _record(store: ProductStore, report: BuildReport, parts: list[PartitionReport]) -> None:
    """What became of each product, from the partitions' reports, into the store and the report."""
    for part in parts:
        for product_id, path in part.fetched.items():
            store.set_status(product_id, "fetched", None, path)
        for product_id, reason in part.failures.items():
            report.failures[product_id] = reason
            store.set_status(product_id, "failed", reason)
        for note, count in part.notes.items():
            report.views[note] = report.views.get(note, 0) + count
        for stage, seconds in part.seconds.items():
            report.worker_seconds[stage] = report.worker_seconds.get(stage, 0.0) + seconds
    store.commit()


def build_index(
    sources: list[Path],
    out: Path,
    options: BuildOptions | None = None,
    embedder: Embedder | None = None,
    localiser: GarmentLocaliser | None = None,
) -> BuildReport:
    """Read, then the embed stage (fetch and embed, partition by partition, on the chosen engine,
    into Parquet shards), then the index stage from the shards; the result replaces `out` only
    if every step succeeds. `embedder`/`localiser`: models this process already holds (local engine)."""
    options = options or BuildOptions()
    report = BuildReport()
    clock = time.perf_counter()
    products, problems = read_catalog(
        sources, options.fmt, options.strict, options.columns, image_roots=options.image_roots
    )
    report.read, report.problems, report.skipped = len(products), problems.problems, len(problems.problems)
    report.seconds["read"] = time.perf_counter() - clock
    if not products:
        raise CatalogError(f"no products could be read from {', '.join(map(str, sources))}")

    embedder = embedder or Embedder(options.embedder, threads=options.threads)
    engine = make_engine(options.engine, options.master, embedder=embedder, localiser=localiser)
    model = load_model_for(options.model, embedder.identity) if options.model else None
    job = EmbedJob(
        embedder=options.embedder,
        cache_dir=str(Path(options.cache_dir).absolute()),
        fetch=options.fetch,
        model=str(Path(options.model).absolute()) if options.model else None,
        model_sha256=TrainedModel.digest(options.model) if options.model else None,
        batch_size=options.batch_size,
        threads=options.threads,
    )
    size = -(-len(products) // _partition_count(options, len(products), engine))
    tasks = partition([(p.id, p.image, tuple(p.categories)) for p in products], size)
    with writer_lock(out, command_line()), layout.atomic_index_dir(out) as staging:
        store = ProductStore.create(staging / layout.STORE)
        store.add(products)
        store.commit()

        # The network converted once, here; every worker reads the pieces instead of converting.
        embedder.warm(model.backbone_tail(embedder.net) if model is not None else None)
        network = network_section(embedder, staging)
        if network:
            job = replace(job, network_dir=str((staging / layout.NETWORK).absolute()))

        clock = time.perf_counter()
        shard_dir, picture_dir = staging / layout.SHARDS, staging / ".pictures"
        parts = engine.run(job, tasks, str(shard_dir.absolute()), str(picture_dir.absolute()), options.progress)
        _record(store, report, parts)
        report.seconds["embed stage"] = time.perf_counter() - clock
        if not shards.shard_paths(shard_dir):
            raise CatalogError(
                f"none of the {len(products)} products has a usable image; nothing to index "
                f"(first failure: {next(iter(report.failures.values()), 'none')})"
            )

        clock = time.perf_counter()
        ids, postings = index_products(store, shard_dir, {p.id: p for p in products})
        postings.save(staging / layout.POSTINGS)
        store_pictures(staging / layout.IMAGES, picture_dir)
        shutil.rmtree(picture_dir)
        resize = {view: view_resize(view, embedder) for view in ("simple", "fine")}
        settings = options.view_settings(len(ids))
        views = index_views(staging, shard_dir, settings, resize, model)
        store.close()
        report.seconds["index"] = time.perf_counter() - clock
        report.indexed, report.failed = len(ids), len(report.failures)

        learned: dict[str, object] = {}
        if model is not None and options.model is not None:
            copy_model(options.model, staging / layout.MODEL_DIR)
            learned = {"model": model_section(model, staging / layout.MODEL_DIR)}
        layout.write_manifest(
            staging,
            {
                **learned,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "firs_version": __version__,
                "embedder": embedder.identity,
                **network,
                "metric": "cosine",
                "ann": {
                    "library": "faiss-hnsw",
                    "version": importlib.metadata.version("faiss-cpu"),
                    **settings.hnsw.as_dict(),
                },
                "views": views,
                "shards": {
                    "folder": layout.SHARDS,
                    "partitions": len(shards.shard_paths(shard_dir)),
                    "engine": engine.name,
                    "columns": shards.columns(shard_dir),
                    "signature": job.signature,
                },
                "catalog_images": dict(report.views),
                "tags": {
                    "postings": layout.POSTINGS,
                    "labels": len(postings.labels()),
                    "sources": "catalogue metadata (types, colours), else the ImageNet head of the fine view "
                    "(types), the fine view's dominant colour, the localiser's region",
                },
                "counts": {
                    "read": report.read,
                    "indexed": report.indexed,
                    "skipped": report.skipped,
                    "failed": report.failed,
                },
                "sources": [str(Path(s).absolute()) for s in sources],
                "feature_dtype": "float32",
            },
        )
    return report

"""`firs build`: catalogue sources in, an index directory out."""

from __future__ import annotations

import importlib.metadata
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..catalog.fetch import FetchPolicy, ImageFetcher
from ..catalog.product import ReadProblem
from ..catalog.sources import read_catalog
from ..catalog.store import ProductStore
from ..errors import CatalogError
from ..index import colour_fusion
from ..index import directory as layout
from ..index.ann import AnnIndex, HnswParams
from ..index.images import ImageStore, display_jpeg
from ..index.model_dir import HEAD, MODEL_JSON, TrainedModel
from ..index.postings import Postings
from ..index.shards import COLOUR, write_shards
from ..index.whitening import fit_whitening
from ..tagging.tagger import colour_tags, product_tags, region_tag
from ..vision.decode import load_image
from ..vision.embedder import Embedder, EmbedderSpec
from ..vision.localiser import GarmentLocaliser
from .embed_stage import Loader, Prepared, embed_images
from .views import FINE_RESIZE, VIEW_PROCESSING, fine_view, view_resize


@dataclass
class BuildOptions:
    fmt: str = "auto"
    strict: bool = False
    columns: dict[str, str] = field(default_factory=dict)
    cache_dir: Path = Path.home() / ".cache" / "firs" / "images"
    embedder: EmbedderSpec = field(default_factory=EmbedderSpec)
    whitening_dim: int = 1024
    whitening_shrink: float | None = None  # None: from d/n, see index/whitening.py
    hnsw: HnswParams = field(default_factory=HnswParams)
    fetch: FetchPolicy = field(default_factory=FetchPolicy)
    image_roots: list[Path] = field(default_factory=list)  # folders local images may lie in, besides the catalogue's
    model: Path | None = None  # a `firs train` model: the fine view's learned heads
    colour_weight: float = colour_fusion.DEFAULT_WEIGHT  # the fine view's colour signature; 0: none
    batch_size: int = 32
    threads: int | None = None
    progress: bool = True


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

    def failure_reasons(self) -> Counter[str]:
        """Failures grouped by the reason's kind (the text after the image name)."""
        return Counter(_reason_kind(reason) for reason in self.failures.values())

    def skip_reasons(self) -> Counter[str]:
        return Counter(_reason_kind(problem.reason) for problem in self.problems)


def _reason_kind(reason: str) -> str:
    text = reason.split(": ", 1)[1] if reason.startswith(("/", "http", "product ")) and ": " in reason else reason
    return text.split(" (")[0][:80]


def catalogue_loader(
    embedder: Embedder, localiser: GarmentLocaliser, categories: dict[str, list[str]], fine_only: bool = False
) -> Loader:
    """Decode a catalogue image once; prepare its simple and fine views — with `fine_only`, the
    fine view alone, without labels or the stored picture (what training needs)."""

    def load(product_id: str, path: str) -> Prepared:
        image = load_image(path)
        view, note, region = fine_view(image, categories.get(product_id, []), localiser)
        fine = embedder.prepare(view, FINE_RESIZE)
        if fine_only:
            return Prepared({"fine": fine}, note)
        tags = colour_tags(view) + ([region_tag(region)] if region else [])
        return Prepared({"simple": embedder.prepare(image), "fine": fine}, note, tags, display_jpeg(image))

    return load


LEARNED_VIEW = "fine"  # the view a trained model maps (garment cut-outs against the catalogue's items)
COLOUR_VIEW = "fine"  # the view whose vectors carry the garment's colour signature (the item on white)


def load_model_for(folder: Path, embedder: Embedder) -> TrainedModel:
    """A trained model, refused when its backbone is not the one this build embeds with."""
    model = TrainedModel.load(folder)
    backbone, running = model.info.get("backbone", {}), embedder.identity
    keys = ("model", "input_size", "pooling", "gem_p", "weights_sha256")
    differences = [key for key in keys if backbone.get(key) != running.get(key)]
    if differences:
        raise CatalogError(f"{folder}: the model was trained on another backbone ({', '.join(differences)} differ)")
    return model


def copy_model(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_JSON, HEAD):
        shutil.copyfile(source / name, target / name)


def build_index(
    sources: list[Path],
    out: Path,
    options: BuildOptions | None = None,
    embedder: Embedder | None = None,
    localiser: GarmentLocaliser | None = None,
) -> BuildReport:
    """Read, fetch, embed and index; the result replaces `out` only if every step succeeds."""
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
    model = load_model_for(options.model, embedder) if options.model else None
    tail = model.backbone_tail(embedder.net) if model is not None else None
    with layout.atomic_index_dir(out) as staging:
        store = ProductStore.create(staging / layout.STORE)
        store.add(products)

        clock = time.perf_counter()
        fetched = ImageFetcher(options.cache_dir, options.fetch).fetch_all(products, options.progress)
        items: list[tuple[str, str]] = []
        for product in products:
            result = fetched[product.id]
            if result.path is None:
                report.failures[product.id] = result.error or "fetch failed"
                store.set_status(product.id, "failed", result.error)
            else:
                items.append((product.id, result.path))
                store.set_status(product.id, "fetched", None, result.path)
        store.commit()
        report.seconds["fetch"] = time.perf_counter() - clock

        clock = time.perf_counter()
        localiser = localiser or GarmentLocaliser()
        load = catalogue_loader(embedder, localiser, {p.id: p.categories for p in products})
        pictures = ImageStore.create(staging / layout.IMAGES)
        embedded = embed_images(
            items,
            embedder,
            load,
            options.batch_size,
            progress=options.progress,
            classify_view="fine",
            keep=lambda product_id, prepared: pictures.put(product_id, prepared.picture),
            signature_views=(COLOUR_VIEW,),
            tails={LEARNED_VIEW: tail} if tail is not None else None,
        )
        pictures.commit()
        pictures.close()
        for product_id, reason in embedded.failures.items():
            report.failures[product_id] = reason
            store.set_status(product_id, "failed", reason)
        store.commit()
        report.seconds["embed"] = time.perf_counter() - clock
        if not embedded.ids:
            raise CatalogError(
                f"none of the {len(products)} products has a usable image; nothing to index "
                f"(first failure: {next(iter(report.failures.values()), 'none')})"
            )

        clock = time.perf_counter()
        views: dict[str, dict[str, object]] = {}
        colour_weight = colour_fusion.check_weight(options.colour_weight)
        for view, features in embedded.features.items():
            folder = staging / layout.view_dir(view)
            signatures = embedded.signatures.get(view)
            extra = {COLOUR: signatures} if signatures is not None else {}
            write_shards(folder / layout.FEATURES, embedded.ids, features, extra)
            if model is not None and view == LEARNED_VIEW:
                whitening = model.catalogue
                model.query.save(folder / layout.QUERY_MAP)
                mapping = {
                    "method": "learned",
                    "dim": whitening.dim,
                    "model": layout.MODEL_DIR,
                    "query": layout.QUERY_MAP,
                }
            else:
                whitening = fit_whitening(features, options.whitening_dim, options.whitening_shrink)
                mapping = {
                    "method": "pca",
                    "dim": whitening.dim,
                    "shrink": whitening.shrink,
                    "fitted_on": "this view's catalogue features (no labels)",
                }
            whitening.save(folder / layout.WHITENING)
            vectors = whitening.apply(features)
            colour: dict[str, object] = {}
            if signatures is not None and colour_weight > 0:
                vectors = colour_fusion.fuse(vectors, signatures, colour_weight)
                colour = {"colour": colour_fusion.manifest_section(colour_weight)}
            AnnIndex.build(vectors, options.hnsw).save(folder / layout.ANN)
            views[view] = {
                "dim": vectors.shape[1],
                "resize": view_resize(view, embedder),
                "whitening": mapping,
                **colour,
                "catalog_processing": VIEW_PROCESSING[view],
            }
        store.assign_labels(embedded.ids)
        by_id = {p.id: p for p in products}
        tags = {
            idx: product_tags(by_id[pid].title, by_id[pid].categories, by_id[pid].metadata, embedded.tags.get(pid, []))
            for idx, pid in enumerate(embedded.ids)
        }
        store.add_tags(tags)
        postings = Postings.build((t.label, idx) for idx, ts in tags.items() for t in ts)
        postings.save(staging / layout.POSTINGS)
        store.close()
        report.seconds["index"] = time.perf_counter() - clock
        report.indexed, report.failed = len(embedded.ids), len(report.failures)
        report.views = dict(embedded.notes)

        learned: dict[str, object] = {}
        if model is not None and options.model is not None:
            copy_model(options.model, staging / layout.MODEL_DIR)
            learned = {
                "model": {
                    "sha256": TrainedModel.digest(staging / layout.MODEL_DIR),
                    "dim": model.dim,
                    "view": LEARNED_VIEW,
                    "tuned_blocks": model.tuned_blocks,
                    "trained_on": model.info.get("trained_on", {}),
                    "best_epoch": model.info.get("best_epoch"),
                }
            }
        layout.write_manifest(
            staging,
            {
                **learned,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "firs_version": __version__,
                "embedder": embedder.identity,
                "metric": "cosine",
                "ann": {
                    "library": "faiss-hnsw",
                    "version": importlib.metadata.version("faiss-cpu"),
                    **options.hnsw.as_dict(),
                },
                "views": views,
                "catalog_images": dict(embedded.notes),
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

"""The embed stage's unit of work: one catalogue partition in, one Parquet shard out.

A partition is plain data (product ids, image sources, categories) and so is the job (the
embedder's spec, the model folder, fetch settings): a worker anywhere — this process, or a
Spark executor — builds its models once from those arguments (`worker_models`), fetches the
partition's images, embeds both views and writes `shards/part-NNNNN.parquet` and the
pictures the index will serve. Per-image failures come back in the report; they never
abort the partition.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..catalog.fetch import FetchPolicy, FetchResult, ImageFetcher
from ..errors import CatalogError
from ..index import shards
from ..index.images import display_jpeg
from ..index.model_dir import TrainedModel
from ..runtime import limit_blas_threads, release_memory, tune_allocator
from ..tagging.tagger import colour_tags, region_tag
from ..vision import colour_signature
from ..vision.backbone_tail import Tail
from ..vision.decode import load_image
from ..vision.embedder import Embedder, EmbedderSpec
from ..vision.localiser import GarmentLocaliser
from .embed_stage import Loader, Prepared, embed_images
from .views import FINE_RESIZE, fine_view

LEARNED_VIEW = "fine"  # the view a trained model maps (garment cut-outs against the catalogue's items)
COLOUR_VIEW = "fine"  # the view whose vectors carry the garment's colour signature (the item on white)
CLASSIFY_VIEW = "fine"  # the view whose ImageNet head names each product's type


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


def load_model_for(folder: Path, identity: dict[str, object]) -> TrainedModel:
    """A trained model, refused when its backbone is not the embedder `identity` describes."""
    model = TrainedModel.load(folder)
    backbone = model.info.get("backbone", {})
    keys = ("model", "input_size", "pooling", "gem_p", "weights_sha256")
    differences = [key for key in keys if backbone.get(key) != identity.get(key)]
    if differences:
        raise CatalogError(f"{folder}: the model was trained on another backbone ({', '.join(differences)} differ)")
    return model


@dataclass(frozen=True)
class EmbedJob:
    """What every worker needs, as plain values."""

    embedder: EmbedderSpec
    cache_dir: str  # where fetched images are cached (shared by the workers of one machine)
    fetch: FetchPolicy
    model: str | None = None  # a `firs train` model folder: its tuned tail embeds the fine view
    model_sha256: str | None = None  # checked by each worker, and the key of its cached models
    batch_size: int = 32
    threads: int | None = None  # network threads per worker (None: torch's default)
    network_dir: str | None = None  # the network's converted pieces, saved by the driver (read, not converted)
    signature: str = colour_signature.DEFAULT_KIND  # the fine view's garment signature (an index keeps its own)


@dataclass(frozen=True)
class PartitionTask:
    number: int
    products: tuple[tuple[str, str, tuple[str, ...]], ...]  # (product id, image URL or path, categories)


@dataclass
class PartitionReport:
    number: int
    embedded: int = 0
    fetched: dict[str, str] = field(default_factory=dict)  # product id -> local image file
    failures: dict[str, str] = field(default_factory=dict)  # product id -> reason
    notes: dict[str, int] = field(default_factory=dict)  # how the fine view was made -> count
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class WorkerModels:
    embedder: Embedder
    localiser: GarmentLocaliser
    tail: Tail | None = None


@functools.cache
def worker_models(job: EmbedJob) -> WorkerModels:
    """The models of one worker process, built on its first partition and kept for the rest.
    A Spark executor's Python worker never ran `firs`'s start-up, so the allocator is tuned here
    (without it the batched network ran at less than half its speed in the workers)."""
    tune_allocator()
    limit_blas_threads()
    network = Path(job.network_dir) if job.network_dir else None
    embedder = Embedder(job.embedder, threads=job.threads, network_dir=network)
    localiser = GarmentLocaliser(threads=job.threads, resample=job.embedder.resample)
    return WorkerModels(embedder, localiser, _tail(embedder, job.model, job.model_sha256))


def _tail(embedder: Embedder, model: str | None, model_sha256: str | None) -> Tail | None:
    if model is None:
        return None
    if model_sha256 is not None and TrainedModel.digest(Path(model)) != model_sha256:
        raise CatalogError(f"{model}: the model changed while the catalogue was being embedded")
    return load_model_for(Path(model), embedder.identity).backbone_tail(embedder.net)


def models_for(
    job: EmbedJob, embedder: Embedder | None = None, localiser: GarmentLocaliser | None = None
) -> WorkerModels:
    """A worker's models; an embedder or localiser already built in this process is reused."""
    if embedder is None and localiser is None:
        return worker_models(job)
    embedder = embedder or Embedder(job.embedder, threads=job.threads)
    localiser = localiser or GarmentLocaliser(threads=job.threads, resample=job.embedder.resample)
    return WorkerModels(embedder, localiser, _tail(embedder, job.model, job.model_sha256))


@dataclass
class Fetched:
    results: dict[str, FetchResult]
    seconds: float


def fetch_partition(job: EmbedJob, task: PartitionTask) -> Fetched:
    """The partition's images as local files (downloaded into the cache), or why not."""
    clock = time.perf_counter()
    fetcher = ImageFetcher(Path(job.cache_dir), job.fetch)
    results = fetcher.fetch_pictures([(pid, source) for pid, source, _ in task.products], progress=False)
    return Fetched(results, time.perf_counter() - clock)


def embed_partition(
    job: EmbedJob,
    task: PartitionTask,
    shard_dir: str,
    picture_dir: str,
    models: WorkerModels | None = None,
    bar: tqdm | None = None,
    fetched: Fetched | None = None,
) -> PartitionReport:
    """Fetch (unless `fetched` already did), embed and write one partition; the report says what
    became of each product."""
    models = models or models_for(job)
    report = PartitionReport(task.number)
    fetched = fetched or fetch_partition(job, task)
    items: list[tuple[str, str]] = []
    for product_id, _, _ in task.products:
        result = fetched.results[product_id]
        if result.path is None:
            report.failures[product_id] = result.error or "fetch failed"
            if bar is not None:
                bar.update(1)
        else:
            report.fetched[product_id] = result.path
            items.append((product_id, result.path))
    report.seconds["fetch"] = fetched.seconds

    clock = time.perf_counter()
    pictures: dict[str, bytes] = {}
    load = catalogue_loader(models.embedder, models.localiser, {pid: list(c) for pid, _, c in task.products})
    embedded = embed_images(
        items,
        models.embedder,
        load,
        job.batch_size,
        progress=False,
        classify_view=CLASSIFY_VIEW,
        keep=lambda product_id, prepared: pictures.__setitem__(product_id, prepared.picture),
        signature_views=(COLOUR_VIEW,),
        signature_kind=job.signature,
        tails={LEARNED_VIEW: models.tail} if models.tail is not None else None,
        bar=bar,
    )
    report.failures.update(embedded.failures)
    report.embedded = len(embedded.ids)
    report.notes = dict(embedded.notes)
    report.seconds["embed"] = time.perf_counter() - clock
    if embedded.ids:
        vectors = dict(embedded.features)
        vectors.update({shards.colour_column(view): values for view, values in embedded.signatures.items()})
        shards.write_shard(
            Path(shard_dir) / shards.shard_name(task.number),
            embedded.ids,
            [embedded.note_of[pid] for pid in embedded.ids],
            [[tag.as_dict() for tag in embedded.tags.get(pid, [])] for pid in embedded.ids],
            vectors,
        )
        shards.write_pictures(
            Path(picture_dir) / shards.pictures_name(task.number),
            embedded.ids,
            [pictures[pid] for pid in embedded.ids],
        )
    release_memory()  # the partition's pictures and batches: the next one starts from the same footprint
    return report


def partition(products: list[tuple[str, str, tuple[str, ...]]], size: int) -> list[PartitionTask]:
    """Consecutive partitions of at most `size` products, numbered from 0."""
    size = max(1, size)
    return [
        PartitionTask(number, tuple(products[start : start + size]))
        for number, start in enumerate(range(0, len(products), size))
    ]

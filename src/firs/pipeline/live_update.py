"""`firs add` and `firs remove`: change a built index in place, while it is being served.

An add runs the embed stage on the new products, partition by partition (the same worker as
the build, with the index's own network and model), and writes each embedded partition's
products — rows, labels, text, raw features, pictures — into the index's stores, the rows in
one SQLite transaction: a product is wholly in or wholly out whatever instant the process
dies, and a rerun finds the written ones known (updates, no duplicates). A known id is an update: its old
ANN label is hidden and the new version gets a fresh label. A remove hides the labels and
deletes the rows in one transaction. The built files (ANN graph, shards, whitening) are not
touched; search overlays the changes (index/live_ann.py) and `firs compact` folds them in.

One writer at a time (index/writer_lock.py). The whitening or learned model is the index's:
features of added products are mapped by it, never refitted.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..catalog.product import Product, ReadProblem
from ..catalog.sources import read_catalog
from ..catalog.store import ProductStore
from ..errors import CatalogError
from ..index import colour_fusion, shards
from ..index import directory as layout
from ..index.images import ImageStore
from ..index.model_dir import TrainedModel
from ..index.writer_lock import command_line, writer_lock
from ..search.engine import spec_from_manifest
from .build import PARTITION_SIZE, CatalogueReading
from .index_stage import tags_for
from .partition import COLOUR_VIEW, EmbedJob, embed_partition, models_for, partition


@dataclass
class AddOptions(CatalogueReading):
    threads: int | None = None


@dataclass
class AddReport:
    read: int = 0
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # product id -> why it was not added
    problems: list[ReadProblem] = field(default_factory=list)
    seconds: float = 0.0


def _work_dir(folder: Path) -> Path:
    """A scratch folder for this add inside the index version; ones left by dead adds go."""
    for old in folder.glob(".adding-*"):
        pid = old.name.removeprefix(".adding-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    work = folder / f".adding-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    return work


def add_products(index: Path, sources: list[Path], options: AddOptions | None = None) -> AddReport:
    options = options or AddOptions()
    report = AddReport()
    clock = time.perf_counter()
    with writer_lock(index, command_line()):
        folder = Path(index).resolve()
        manifest = layout.read_manifest(folder)
        products, problems = read_catalog(
            sources, options.fmt, options.strict, options.columns, image_roots=options.image_roots
        )
        report.read, report.problems = len(products), problems.problems
        if not products:
            first = f": {problems.problems[0]}" if problems.problems else ""
            raise CatalogError(f"no products could be read from {', '.join(map(str, sources))}{first}")
        model = folder / layout.MODEL_DIR if "model" in manifest else None
        job = EmbedJob(
            embedder=spec_from_manifest(manifest, folder),
            cache_dir=str(Path(options.cache_dir).absolute()),
            fetch=options.fetch,
            model=str(model) if model else None,
            model_sha256=TrainedModel.digest(model) if model else None,
            threads=options.threads,
            network_dir=str(folder / layout.NETWORK) if layout.network_files(manifest) else None,
            signature=colour_fusion.signature_kind(manifest, COLOUR_VIEW),
        )
        work = _work_dir(folder)
        by_id = {p.id: p for p in products}
        tasks = partition([(p.id, p.image, tuple(p.categories)) for p in products], PARTITION_SIZE)
        try:
            with tqdm(total=len(products), desc="embed images", unit="img", disable=not options.progress) as bar:
                for task in tasks:  # one partition in memory at a time, each written when embedded
                    part = embed_partition(
                        job, task, str(work / "shards"), str(work / "pictures"), models_for(job), bar
                    )
                    report.failures.update(part.failures)
                    _write(folder, work, by_id, report)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if not report.added and not report.updated:
        raise CatalogError(
            f"none of the {len(products)} products has a usable image; nothing was added "
            f"(first failure: {next(iter(report.failures.values()), 'none')})"
        )
    report.seconds = time.perf_counter() - clock
    return report


def _write(folder: Path, work: Path, products: dict[str, Product], report: AddReport) -> None:
    """One embedded partition into the index: pictures first (by id: a rerun overwrites), then
    every product's rows in one transaction; the scratch shards are emptied for the next."""
    shard_dir = work / "shards"
    if shards.shard_paths(shard_dir):
        rows = list(shards.iter_rows(shard_dir))
        features = {
            column: shards.read_column(shard_dir, column)[1]
            for column in shards.columns(shard_dir)
            if column not in (shards.ID, shards.NOTE, shards.LABELS)
        }
        layout.mark_live(folder)
        pictures = ImageStore.open_writable(folder / layout.IMAGES)
        for part_file in sorted((work / "pictures").glob("*.parquet")):
            for product_id, jpeg in shards.read_pictures(part_file):
                pictures.put(product_id, jpeg)
        pictures.commit()
        pictures.close()
        store = ProductStore.open_writable(folder / layout.STORE)
        try:
            known = {pid for pid, _, _ in rows if store.label_of(pid) is not None}
            tags = [tags_for(products[pid], labels) for pid, _, labels in rows]
            store.add_live([products[pid] for pid, _, _ in rows], rows, features, tags)
        finally:
            store.close()
        report.updated += [pid for pid, _, _ in rows if pid in known]
        report.added += [pid for pid, _, _ in rows if pid not in known]
    shutil.rmtree(shard_dir, ignore_errors=True)
    shutil.rmtree(work / "pictures", ignore_errors=True)


@dataclass
class RemoveReport:
    removed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # ids the index does not hold (a typo, or removed before)


def remove_products(index: Path, ids: list[str]) -> RemoveReport:
    """Hide the products' labels and delete their rows in one transaction, then their pictures.
    Ids the index does not hold change nothing (the stores stay as built until a real change)."""
    report = RemoveReport()
    with writer_lock(index, command_line()):
        folder = Path(index).resolve()
        layout.read_manifest(folder)
        wanted = list(dict.fromkeys(ids))
        store = ProductStore.open_readonly(folder / layout.STORE)
        try:
            report.unknown = [pid for pid in wanted if store.get(pid) is None]
        finally:
            store.close()
        report.removed = [pid for pid in wanted if pid not in report.unknown]
        if report.removed:
            layout.mark_live(folder)
            store = ProductStore.open_writable(folder / layout.STORE)
            try:
                store.remove_live(report.removed)
            finally:
                store.close()
        if "live" in layout.read_manifest(folder):
            # After the store: a crash in between leaves pictures no product names, which the
            # service never sends (it looks products up first) and a rerun or `firs compact` drops.
            pictures = ImageStore.open_writable(folder / layout.IMAGES)
            pictures.delete(wanted)
            pictures.commit()
            pictures.close()
    return report

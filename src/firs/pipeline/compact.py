"""`firs compact`: fold what `firs add`/`remove` changed in place into a new index version.

The shards lose the rows of products removed or replaced since the build and gain the rows of
products added (from the store's live tables), the store is written afresh with labels in the
new shard order, the tag index and pictures follow, and each view's graph is built again over
the shards with the index's own whitening or model (never refitted: that is `firs reindex`).
The new version replaces the old in one rename (index/directory.py), so a compact killed at
any instant leaves the old index, changes included, and running it again finishes the work;
a `firs serve` on the index reopens it when it sees the new version.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..catalog.store import ProductStore
from ..index import directory as layout
from ..index import shards
from ..index.ann import HnswParams
from ..index.images import ImageStore
from ..index.postings import Postings
from ..index.whitening import Whitening
from ..index.writer_lock import command_line, writer_lock
from ..tagging.tagger import Tag
from .build import PARTITION_SIZE
from .index_stage import build_ann


@dataclass
class CompactReport:
    products: int = 0  # in the index afterwards
    dropped: int = 0  # graph entries of removed or replaced products, now gone
    folded: int = 0  # products added in place, now in the shards and the graph
    seconds: float = 0.0


def _new_shards(
    folder: Path,
    staging: Path,
    hidden: np.ndarray,
    live: list[tuple[int, str, str, list[dict[str, object]]]],
    features: dict[str, np.ndarray],
) -> list[str]:
    """The built rows whose labels are not hidden, then the rows added in place; their ids in order."""
    target = staging / layout.SHARDS
    ids: list[str] = []
    start, number = 0, 0
    for path in shards.shard_paths(folder / layout.SHARDS):
        count = shards.row_count(path)
        keep = ~np.isin(np.arange(start, start + count), hidden)
        start += count
        if keep.any():
            ids += shards.filtered_copy(path, target / shards.shard_name(number), keep)
            number += 1
    for first in range(0, len(live), PARTITION_SIZE):
        part = live[first : first + PARTITION_SIZE]
        vectors = {name: values[first : first + len(part)] for name, values in features.items()}
        part_ids = [row[1] for row in part]
        shards.write_shard(
            target / shards.shard_name(number), part_ids, [row[2] for row in part], [row[3] for row in part], vectors
        )
        ids += part_ids
        number += 1
    return ids


def _new_store(folder: Path, staging: Path, ids: list[str]) -> Postings:
    """The store written afresh: every product row as it is now, labels in the new shard order,
    each product's labels carried over; returns the tag index over the new labels."""
    old = ProductStore.open_readonly(folder / layout.STORE)
    try:
        labels = old.labels_by_id()
        old_labels = [labels[pid] for pid in ids]  # every id in the new shards is a product in the store
        tags = old.tags_of(old_labels)
    finally:
        old.close()
    store = ProductStore.create(staging / layout.STORE)
    with store.db:
        store.db.execute("ATTACH DATABASE ? AS old", (f"file:{folder / layout.STORE}?mode=ro",))
        store.db.execute(
            "INSERT INTO products (id, title, brand, categories, price, image_source, image_path, status, reason,"
            " origin, metadata) SELECT id, title, brand, categories, price, image_source, image_path, status, reason,"
            " origin, metadata FROM old.products"
        )
    store.db.execute("DETACH DATABASE old")
    store.assign_labels(ids)
    new_tags = {new: [Tag.from_dict(t) for t in tags.get(old_label, [])] for new, old_label in enumerate(old_labels)}
    store.add_tags(new_tags)
    store.close()
    return Postings.build((t.label, idx) for idx, ts in new_tags.items() for t in ts)


def _pictures(folder: Path, staging: Path, ids: list[str]) -> None:
    """The picture store copied whole (SQLite's backup: a consistent copy), less pictures no product names."""
    source = sqlite3.connect(f"file:{folder / layout.IMAGES}?mode=ro", uri=True)
    target = sqlite3.connect(staging / layout.IMAGES)
    try:
        source.backup(target)
    finally:
        source.close()
    target.close()
    pictures = ImageStore.open_writable(staging / layout.IMAGES)
    kept = set(ids)
    gone = [pid for (pid,) in pictures.db.execute("SELECT id FROM images") if pid not in kept]
    pictures.delete(gone)
    pictures.commit()
    pictures.db.execute("PRAGMA journal_mode=DELETE")  # one file again, as a build writes it
    pictures.db.execute("VACUUM")
    pictures.close()


def compact(index: Path) -> CompactReport | None:
    """A new version of `index` with its changes in place folded in; None when there were none."""
    clock = time.perf_counter()
    with writer_lock(index, command_line()):
        folder = Path(index).resolve()
        manifest = layout.read_manifest(folder)
        if "live" not in manifest:
            return None
        carried_files = [n for n in manifest["files"] if n.split("/")[0] in (layout.NETWORK, layout.MODEL_DIR)]
        maps = [n for n in manifest["files"] if n.startswith("views/") and not n.endswith(layout.ANN)]
        layout.verify_files(folder, manifest, carried_files + maps)
        store = ProductStore.open_readonly(folder / layout.STORE)
        try:
            snapshot = store.live_snapshot()
            live = store.live_rows()
        finally:
            store.close()
        ann = manifest["ann"]
        hnsw = HnswParams(ann["m"], ann["ef_construction"], ann["ef_search"], ann.get("storage", "flat"))
        with layout.atomic_index_dir(Path(index)) as staging:
            ids = _new_shards(folder, staging, snapshot.hidden, live, snapshot.features)
            postings = _new_store(folder, staging, ids)
            postings.save(staging / layout.POSTINGS)
            _pictures(folder, staging, ids)
            for name in carried_files + maps:
                layout.link_or_copy(folder / name, staging / name)
            views = {}
            for view, info in manifest["views"].items():
                whitening = Whitening.load(staging / layout.view_dir(view) / layout.WHITENING)
                weight = float(info.get("colour", {}).get("weight", 0.0))
                ann, search = build_ann(staging / layout.SHARDS, view, whitening, weight, hnsw)
                ann.save(staging / layout.view_dir(view) / layout.ANN)
                views[view] = {**info, "search": search}
            report = CompactReport(len(ids), len(snapshot.hidden), len(live))
            kept = {k: v for k, v in manifest.items() if k not in ("files", "format_version", "live")}
            counts = dict(manifest.get("counts", {}))
            counts["indexed"] = len(ids)
            kept["counts"] = counts
            kept["views"] = views
            parts = len(shards.shard_paths(staging / layout.SHARDS))
            kept["shards"] = {**manifest.get("shards", {}), "partitions": parts}
            report.seconds = time.perf_counter() - clock
            kept["compacted"] = {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "dropped": report.dropped,
                "folded": report.folded,
                "seconds": round(report.seconds, 1),
            }
            layout.write_manifest(staging, kept)
    return report

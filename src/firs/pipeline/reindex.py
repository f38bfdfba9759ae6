"""`firs reindex`: a new whitening or learned head and a new ANN from an index's own shards.

Nothing is fetched or embedded: the store, the pictures, the tag index and the shards pass
to the new version unchanged (hard links where the file system allows, else copies) and
only the views are made again by the index stage. The new version replaces the old one
atomically, like a build.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..catalog.store import ProductStore
from ..errors import CatalogError, IndexFormatError
from ..index import colour_fusion, shards
from ..index import directory as layout
from ..index.ann import COMPRESSIONS, HnswParams, storage_for
from ..index.model_dir import TrainedModel
from ..index.writer_lock import command_line, writer_lock
from .build import copy_model, model_section
from .index_stage import ViewSettings, index_views
from .partition import COLOUR_VIEW, load_model_for


@dataclass
class ReindexOptions:
    model: Path | None = None  # a heads-only `firs train` model for the fine view
    drop_model: bool = False  # back to PCA-whitening in every view
    whitening_dim: int | None = None  # None: as the index had it
    colour_weight: float | None = None  # None: as the index had it; a model come or gone: its default
    compress: str | None = None  # None: as the index had it; else a key of COMPRESSIONS
    whitening_shrink: float | None = None  # None: the build's rule (index/whitening.auto_shrink)


def _labels_follow_shards(folder: Path) -> None:
    """The store's ANN labels are the shards' row order; anything else would mislabel every result."""
    store = ProductStore.open_readonly(folder / layout.STORE)
    try:
        labelled = store.ids_by_label()
    finally:
        store.close()
    if labelled != shards.read_ids(folder / layout.SHARDS):
        raise IndexFormatError(f"{folder}: the shards and the product store disagree; rebuild with `firs build`")


def _model(options: ReindexOptions, manifest: dict[str, Any], folder: Path) -> TrainedModel | None:
    had = manifest.get("model")
    if had and had.get("tuned_blocks"):
        if options.model is None and not options.drop_model:
            return load_model_for(folder / layout.MODEL_DIR, manifest["embedder"])
        raise CatalogError(
            f"{folder}: its fine view was embedded through the tuned backbone blocks of its model; "
            "another model needs the catalogue embedded again (`firs build --model`)"
        )
    if options.drop_model:
        return None
    if options.model is not None:
        model = load_model_for(options.model, manifest["embedder"])
        if model.tuned_blocks:
            raise CatalogError(
                f"{options.model}: the model tunes {model.tuned_blocks} backbone blocks, so the catalogue must be "
                "embedded through them: use `firs build --model`, not reindex"
            )
        return model
    return load_model_for(folder / layout.MODEL_DIR, manifest["embedder"]) if had else None


def _settings(options: ReindexOptions, manifest: dict[str, Any], learned: bool) -> ViewSettings:
    views = manifest["views"]
    pca = [v["whitening"]["dim"] for v in views.values() if v["whitening"]["method"] == "pca"]
    weight = views.get(COLOUR_VIEW, {}).get("colour", {}).get("weight", 0.0)
    if weight > 0 and learned != ("model" in manifest):  # chosen for the embedding that is going
        weight = colour_fusion.default_weight(learned)
    ann = manifest["ann"]
    count = manifest["counts"]["indexed"]
    storage = storage_for(options.compress, count) if options.compress else ann.get("storage", "flat")
    return ViewSettings(
        whitening_dim=options.whitening_dim or (pca[0] if pca else 1024),
        colour_weight=weight if options.colour_weight is None else options.colour_weight,
        whitening_shrink=options.whitening_shrink,
        signature_kind=colour_fusion.signature_kind(manifest, COLOUR_VIEW),
        hnsw=HnswParams(ann["m"], ann["ef_construction"], ann["ef_search"], storage),
    )


def reindex(index: Path, options: ReindexOptions | None = None) -> dict[str, Any]:
    """Make the views of `index` again from its shards; returns the new manifest."""
    options = options or ReindexOptions()
    if options.compress is not None and options.compress not in COMPRESSIONS:
        raise CatalogError(f"--compress {options.compress!r}: choose one of {', '.join(COMPRESSIONS)}")
    with writer_lock(index, command_line()):
        return _reindex(Path(index), options)


def _reindex(index: Path, options: ReindexOptions) -> dict[str, Any]:
    folder = index.resolve()
    manifest = layout.read_manifest(folder)
    if "live" in manifest:
        raise IndexFormatError(
            f"{folder}: products were added or removed in place since the build; "
            "run `firs compact` first (it folds them into the shards), then reindex"
        )
    kept = [name for name in manifest["files"] if name.split("/")[0] not in ("views", layout.MODEL_DIR)]
    layout.verify_files(folder, manifest, kept)
    _labels_follow_shards(folder)
    model = _model(options, manifest, folder)
    settings = _settings(options, manifest, model is not None)
    clock = time.perf_counter()
    with layout.atomic_index_dir(Path(index)) as staging:
        for name in kept:
            layout.link_or_copy(folder / name, staging / name)
        model_source = options.model or (folder / layout.MODEL_DIR)
        if model is not None:
            copy_model(model_source, staging / layout.MODEL_DIR)
        resize = {view: entry["resize"] for view, entry in manifest["views"].items()}
        views = index_views(staging, staging / layout.SHARDS, settings, resize, model)
        carried = {k: v for k, v in manifest.items() if k not in ("files", "format_version", "views", "model")}
        carried["ann"] = {**manifest["ann"], **settings.hnsw.as_dict()}
        new = {
            **carried,
            **({"model": model_section(model, staging / layout.MODEL_DIR)} if model is not None else {}),
            "views": views,
            "reindexed": {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "from": manifest.get("created"),
                "seconds": round(time.perf_counter() - clock, 1),
            },
        }
        layout.write_manifest(staging, new)
    return layout.read_manifest(Path(index))

"""The index stage: embedding shards in, the index's search structures out.

It reads `shards/` (written by the embed stage, pipeline/partition.py) one shard at a time:
per view, the PCA-whitening is fitted from moments summed shard by shard (or a `firs train`
model's head takes its place), then each shard is whitened, given the colour signature beside
it, and added to the HNSW graph — the build's memory is the graph, not the raw features. The
products' labels and the pictures the service sends come from the same partitions. `firs
reindex` runs the view part again on an index's own shards.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..catalog.product import Product
from ..catalog.store import ProductStore
from ..index import colour_fusion, shards
from ..index import directory as layout
from ..index.ann import PROBE_NOISE, TUNING_K, TUNING_SAMPLE, AnnIndex, HnswParams
from ..index.images import ImageStore
from ..index.model_dir import TrainedModel
from ..index.postings import Postings
from ..index.whitening import Moments, Whitening
from ..runtime import all_blas_threads
from ..tagging.tagger import Tag, product_tags
from ..vision import colour_signature
from .partition import COLOUR_VIEW, LEARNED_VIEW
from .views import VIEW_PROCESSING


@dataclass(frozen=True)
class ViewSettings:
    whitening_dim: int = 1024
    whitening_shrink: float | None = None  # None: from d/n, see index/whitening.py
    colour_weight: float = colour_fusion.DEFAULT_WEIGHT  # the fine view's colour signature; 0: none
    hnsw: HnswParams = field(default_factory=HnswParams)
    signature_kind: str = colour_signature.DEFAULT_KIND  # what the shards' signatures are (reindex: the index's)


def shard_views(shard_dir: Path) -> list[str]:
    """The views whose features the shards hold."""
    fixed = {shards.ID, shards.NOTE, shards.LABELS}
    return [name for name in shards.columns(shard_dir) if name not in fixed and not name.endswith("_colour")]


def _fit(shard_dir: Path, view: str, settings: ViewSettings) -> Whitening:
    moments: Moments | None = None
    with all_blas_threads():
        for _, block in shards.iter_column(shard_dir, view):
            moments = moments or Moments(block.shape[1])
            moments.add(block)
        assert moments is not None, "no shards to fit a whitening on"
        return moments.whitening(settings.whitening_dim, settings.whitening_shrink)


def index_views(
    staging: Path,
    shard_dir: Path,
    settings: ViewSettings,
    resize: Mapping[str, str],
    model: TrainedModel | None = None,
) -> dict[str, dict[str, object]]:
    """Whitening (or the model's head) and ANN of every view; the manifest's `views` section."""
    colour_weight = colour_fusion.check_weight(settings.colour_weight)
    have = set(shards.columns(shard_dir))
    views: dict[str, dict[str, object]] = {}
    for view in shard_views(shard_dir):
        folder = staging / layout.view_dir(view)
        folder.mkdir(parents=True, exist_ok=True)
        if model is not None and view == LEARNED_VIEW:
            whitening = model.catalogue
            model.query.save(folder / layout.QUERY_MAP)
            mapping: dict[str, object] = {
                "method": "learned",
                "dim": whitening.dim,
                "model": layout.MODEL_DIR,
                "query": layout.QUERY_MAP,
            }
        else:
            whitening = _fit(shard_dir, view, settings)
            mapping = {
                "method": "pca",
                "dim": whitening.dim,
                "shrink": whitening.shrink,
                "fitted_on": "this view's catalogue features (no labels)",
            }
        whitening.save(folder / layout.WHITENING)
        fuse = view == COLOUR_VIEW and shards.colour_column(view) in have and colour_weight > 0
        ann, search = build_ann(shard_dir, view, whitening, colour_weight if fuse else 0.0, settings.hnsw)
        ann.save(folder / layout.ANN)
        views[view] = {
            "dim": ann.index.d,
            "resize": resize[view],
            "whitening": mapping,
            **({"colour": colour_fusion.manifest_section(colour_weight, settings.signature_kind)} if fuse else {}),
            "catalog_processing": VIEW_PROCESSING[view],
            "search": search,
        }
    return views


def build_ann(
    shard_dir: Path, view: str, whitening: Whitening, colour_weight: float, hnsw: HnswParams
) -> tuple[AnnIndex, dict[str, object]]:
    """A view's graph over the shards' products, labels in shard order, one shard in memory at a
    time; and the view's `search` section: the efSearch tuned on it and the recall it reached."""
    ann = AnnIndex.from_blocks(functools.partial(_search_vectors, shard_dir, view, whitening, colour_weight), hnsw)
    ef_search, recall = ann.tune_ef_search()
    return ann, {
        "ef_search": ef_search,
        f"recall@{TUNING_K}": round(recall, 4),
        "measured_on": f"up to {TUNING_SAMPLE} catalogue vectors pushed off by noise {PROBE_NOISE}x their length",
    }


def _search_vectors(shard_dir: Path, view: str, whitening: Whitening, colour_weight: float) -> Iterator[np.ndarray]:
    """The view's search vectors, shard by shard."""
    colours = shards.iter_column(shard_dir, shards.colour_column(view)) if colour_weight > 0 else None
    for _, block in shards.iter_column(shard_dir, view):
        colour = None if colours is None else next(colours)[1]
        yield colour_fusion.catalogue_vectors(block, colour, whitening, colour_weight)


def tags_for(product: Product, picture_labels: list[dict[str, object]]) -> list[Tag]:
    """A product's labels: its metadata's, and what its picture showed (a shard row's labels)."""
    return product_tags(product.title, product.categories, product.metadata, [Tag.from_dict(t) for t in picture_labels])


def index_products(store: ProductStore, shard_dir: Path, products: Mapping[str, Product]) -> tuple[list[str], Postings]:
    """ANN labels in shard order, each product's labels (metadata + what its picture showed)
    in the store, and the inverted tag index; returns the ids in label order."""
    ids: list[str] = []
    tags: dict[int, list[Tag]] = {}
    for idx, (product_id, _, labels) in enumerate(shards.iter_rows(shard_dir)):
        tags[idx] = tags_for(products[product_id], labels)
        ids.append(product_id)
    store.assign_labels(ids)
    store.add_tags(tags)
    return ids, Postings.build((t.label, idx) for idx, ts in tags.items() for t in ts)


def store_pictures(path: Path, picture_dir: Path) -> None:
    """The embed stage's picture shards into the index's picture store."""
    pictures = ImageStore.create(path)
    for part in sorted(picture_dir.glob("pictures-*.parquet")):
        for product_id, jpeg in shards.read_pictures(part):
            pictures.put(product_id, jpeg)
    pictures.commit()
    pictures.close()

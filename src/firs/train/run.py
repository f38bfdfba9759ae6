"""`firs train`: catalogue and pairs in, a model folder out.

Read the catalogue (any format `firs build` reads) and the pairs — given (PAIRS.tsv), or
mined from the catalogue's own pictures, or synthetic (train/mining.py), and beside real pairs
synthetic ones of the products they do not show (TrainSetup.made_up_pairs); compute the frozen
features once (cached in MODEL_DIR/cache); hold out a share of the products; train the heads
with early stopping, a checkpoint each epoch and the best heads saved as they come — one member
after the other when the model has several (TrainOptions.members), saved as one model.
"""

from __future__ import annotations

import random
import time
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..catalog.fetch import FetchPolicy, ImageFetcher
from ..catalog.problems import ProblemLog
from ..catalog.product import Product
from ..catalog.sources import read_catalog
from ..errors import FirsError
from ..index.model_dir import HEAD, MODEL_JSON, TrainedModel
from ..vision.backbone_tail import tail_blocks
from ..vision.embedder import Embedder
from ..vision.localiser import GarmentLocaliser
from .features import QueryFeatures, catalogue_features, fingerprint, query_features
from .mining import picture_pairs, synthetic_pairs
from .pairs import Pair, read_pairs
from .trainer import CHECKPOINT, Outcome, TrainOptions, combine, split_by_product, train_heads, validate_members

# Views per query. A photo's: its clean cut-out and street versions of it. On the dev pairs (two
# tuned blocks, margin 0.2, CPU), street fine R@1 / R@20 with street scenes: clean + 2 .431 / .763,
# clean + 1 .423 / .768, clean + 3 .424 / .765; studio R@1 .498, .482, .462 (docs/architecture.md,
# "Street scenes"). A made-up pair has no clean view: each view is another synthetic street
# version of the product shot, and four is what it was measured with.
PHOTO_VIEWS, SYNTHETIC_VIEWS = 3, 4
FEATURE_CACHE = "cache"  # inside MODEL_DIR unless --feature-cache names another folder


@dataclass
class TrainSetup:
    catalog: list[Path]
    out: Path
    pairs: Path | None = None
    options: TrainOptions = field(default_factory=TrainOptions)
    views: int | None = None  # per query; None: PHOTO_VIEWS, or SYNTHETIC_VIEWS for made-up pairs
    image_roots: list[Path] = field(default_factory=list)
    cache_dir: Path = Path.home() / ".cache" / "firs" / "images"
    fetch: FetchPolicy = field(default_factory=FetchPolicy)
    strict: bool = False
    resume: bool = False
    progress: bool = True
    feature_cache: Path | None = None  # where frozen features are kept (default MODEL_DIR/cache)
    # A photo's street versions: its person put into a street scene and cut out again by the
    # localiser, not its cut-out altered. Dev set, one street version: street fine R@1 / R@20
    # .423 / .768 against .419 / .755, studio .482 / .801 against .474 / .791 (docs/architecture.md,
    # "Street scenes").
    scenes: bool = True
    # Catalogue products that no pair shows also train, against made-up street versions of their
    # own shot (synthetic pairs), at most as many as the real pairs. Dev set, street fine R@1 / R@20
    # through the real commands: .460 / .794 without, .471 / .812 with (two more pairs of member
    # seeds .463 / .799, .466 / .806); against the viton products alone (no distractor, the products
    # made up here) .467 / .802 and .476 / .815 (.468 / .805, .470 / .812). Beside pairs mined from
    # the catalogue, validation is higher too (docs/architecture.md, "Made-up pairs beside real ones").
    made_up_pairs: bool = True


@dataclass
class TrainReport:
    source: str  # where the pairs came from: given, worn pictures, synthetic
    pairs: int
    made_up: int  # synthetic pairs of products no pair shows, trained beside the real ones
    skipped: list[str]
    failed: dict[str, str]
    train_pairs: int
    val_pairs: int
    val_products: int
    catalogue: int
    catalogue_failed: dict[str, str]  # product id -> why its picture gave no fine view
    outcome: Outcome  # the model's; with several members, the first member's history
    seconds: dict[str, float]
    members: list[Outcome] = field(default_factory=list)  # each member's own run
    validation: dict[str, float] | None = None  # the whole model's, when it has several members


def unpaired_products(
    products: list[Product], paired: set[str], usable: Container[str], limit: int, seed: int
) -> list[Product]:
    """The products whose fine view worked (`usable`) and that no pair shows: at most `limit`, a
    seeded draw."""
    spare = [p for p in products if p.id in usable and p.id not in paired]
    if len(spare) <= limit:
        return spare
    chosen = set(random.Random(seed).sample(range(len(spare)), limit))
    return [p for n, p in enumerate(spare) if n in chosen]


def check_folders(setup: TrainSetup) -> None:
    """Before any work: MODEL_DIR must be new, empty or a model folder (one a run, maybe an
    interrupted one, left), and a feature cache a folder; a file, or a folder of other things
    as MODEL_DIR, is refused."""
    out = setup.out
    for option, folder in (("--out", out), ("--feature-cache", setup.feature_cache)):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise FirsError(f"{option} {folder}: exists and is not a folder")
    ours = (MODEL_JSON, HEAD, CHECKPOINT, FEATURE_CACHE)
    if out.is_dir() and any(out.iterdir()) and not any((out / name).exists() for name in ours):
        raise FirsError(f"--out {out}: a folder of other things, not a FIRS model (no {MODEL_JSON}); give a new folder")


def train_model(setup: TrainSetup, embedder: Embedder | None = None) -> TrainReport:
    clock, seconds = time.perf_counter(), {}
    check_folders(setup)
    products, problems = read_catalog(setup.catalog, strict=setup.strict, image_roots=setup.image_roots)
    if not products:
        raise FirsError(f"no products could be read from {', '.join(map(str, setup.catalog))}")
    pair_problems = ProblemLog(strict=setup.strict)
    embedder = embedder or Embedder(threads=None)
    most = tail_blocks(embedder.net)
    if not 0 <= setup.options.tune_blocks <= most:  # before the long feature stage
        raise FirsError(f"--tune-blocks: 0 to {most}, not {setup.options.tune_blocks}")
    localiser = GarmentLocaliser()
    cache = setup.feature_cache or setup.out / FEATURE_CACHE
    maps = setup.options.tune_blocks > 0  # a tuned tail trains on the trunk's maps, else on pooled features
    catalogue, paths = catalogue_features(
        products, embedder, localiser, cache, setup.cache_dir, setup.fetch, setup.progress, maps
    )
    row_of = {product_id: row for row, product_id in enumerate(catalogue.ids)}
    if setup.pairs is not None:
        pairs, source = read_pairs(setup.pairs, {p.id for p in products}, pair_problems), "given"
        dropped: dict[str, str] = {}
    else:
        pairs, dropped = picture_pairs(products, ImageFetcher(setup.cache_dir, setup.fetch), setup.progress)
        source = "worn pictures"
    usable = [p for p in pairs if p.product_id in row_of]
    dropped.update(
        (p.origin, f"product {p.product_id}: {catalogue.failures.get(p.product_id, 'no image')}")
        for p in pairs
        if p.product_id not in row_of
    )

    def features_of(chosen: list[Pair], views: int) -> QueryFeatures:
        return query_features(
            chosen,
            {p.id: p.categories for p in products},
            embedder,
            localiser,
            cache,
            list(paths.values()),
            views,
            setup.options.seed,
            progress=setup.progress,
            maps=maps,
            scenes=setup.scenes,
        )

    views = setup.views or PHOTO_VIEWS
    queries = features_of(usable, views)
    if setup.pairs is None and not queries.pairs:
        # No worn picture anywhere: each product shot against made-up worn street versions of itself.
        pairs = synthetic_pairs([p for p in products if p.id in row_of], paths)
        views = setup.views or SYNTHETIC_VIEWS
        queries, source = features_of(pairs, views), "synthetic"
    if not queries.pairs:
        raise FirsError("no pair has a usable query photo and product image")
    held_out = split_by_product([p.product_id for p in queries.pairs], setup.options.val_fraction, setup.options.seed)
    made_up, spare = 0, []
    if setup.made_up_pairs and source != "synthetic":
        paired = {p.product_id for p in queries.pairs}
        spare = unpaired_products(products, paired, row_of, len(queries.pairs), setup.options.seed)
    if spare:
        extra = features_of(synthetic_pairs(spare, paths), views)
        made_up = len(extra.pairs)
        queries = QueryFeatures(
            queries.pairs + extra.pairs,
            np.concatenate([queries.features, extra.features]),
            {**queries.failures, **extra.failures},
        )
    seconds["features"] = time.perf_counter() - clock
    targets = np.array([row_of[p.product_id] for p in queries.pairs])
    val_rows = np.array([i for i, p in enumerate(queries.pairs) if p.product_id in held_out], dtype=np.int64)
    street = "scenes" if setup.scenes and source != "synthetic" else "altered cut-outs"
    data_key = fingerprint([catalogue.ids, [f"{p.query}\t{p.product_id}" for p in queries.pairs], views, street])
    info: dict[str, Any] = {
        "kind": "linear heads (query, catalogue) on backbone features, InfoNCE over the catalogue"
        + (" and back over the batch's queries" if setup.options.symmetric else "")
        + (f"; the backbone's last {setup.options.tune_blocks} block(s) tuned" if maps else "")
        + (
            f"; {setup.options.member_count} members trained apart, their features side by side"
            if setup.options.member_count > 1
            else ""
        ),
        "backbone": embedder.identity,
        "tuned_blocks": setup.options.tune_blocks,
        "trained_on": {
            "pairs": str(setup.pairs) if setup.pairs else None,
            "pair_source": source,
            "catalogue": [str(s) for s in setup.catalog],
            "pairs_used": len(queries.pairs) - made_up,
            "made_up_pairs": made_up,
            "catalogue_products": len(catalogue.ids),
            "val_products": len(held_out),
            "val_pairs": len(val_rows),
            "held_out_products": sorted(held_out),
            "data_fingerprint": data_key,
        },
        "views_per_query": views,
        "street_versions": street,
        "options": setup.options.as_dict(),
        "firs_version": __version__,
    }

    members: list[Outcome] = []
    validation: dict[str, float] | None = None

    def save(latest: Outcome) -> None:
        """The members trained so far and `latest`'s best heads, as one model."""
        outcome = combine([*members, latest])
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        runs = [
            {"seed": setup.options.member_seed(n), "best_epoch": m.best_epoch, "history": m.history}
            for n, m in enumerate([*members, latest])
        ]
        described = {"members": len(runs), "member_runs": runs} if len(runs) > 1 else {}
        if validation is not None:
            described["validation"] = validation
        model = TrainedModel(
            outcome.query,
            outcome.catalogue,
            {**info, "created": stamp, "history": outcome.history, "best_epoch": outcome.best_epoch, **described},
            outcome.tail,
        )
        model.save(setup.out)

    clock = time.perf_counter()
    for member in range(setup.options.member_count):
        members.append(
            train_heads(
                catalogue.features,
                queries.features,
                targets,
                val_rows,
                setup.options,
                setup.out,
                data_key,
                resume=setup.resume,
                progress=setup.progress,
                on_best=save,
                embedder=embedder,
                member=member,
            )
        )
    last = members.pop()
    if members and len(val_rows):
        validation = validate_members(
            combine([*members, last]),
            len(members) + 1,
            catalogue.features,
            queries.features,
            targets,
            val_rows,
            setup.options,
            embedder,
        )
    save(last)
    members.append(last)
    outcome = combine(members)
    seconds["train"] = time.perf_counter() - clock
    return TrainReport(
        source=source,
        pairs=len(pairs),
        made_up=made_up,
        skipped=[str(p) for p in pair_problems.problems + problems.problems],
        failed={**dropped, **queries.failures},
        train_pairs=len(queries.pairs) - made_up - len(val_rows),
        val_pairs=len(val_rows),
        val_products=len(held_out),
        catalogue=len(catalogue.ids),
        catalogue_failed=catalogue.failures,
        outcome=outcome,
        seconds=seconds,
        members=members,
        validation=validation,
    )

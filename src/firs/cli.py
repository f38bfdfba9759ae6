"""The `firs` command: build, add, remove, compact, reindex, train, search, eval, serve, demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from . import __version__
from .errors import FirsError

ADD_NICENESS = 10  # `firs add` yields the CPU to a `firs serve` answering searches on the same machine
# A search alternates between its networks (every core) and one-thread steps (decoding, GrabCut):
# with two per core, 8 clients got 29.1 fine / 89.9 simple answers/s against 26.3 / 76.7 with one
# per core, at ~0.23 GB more peak memory (bench/http_latency.py, 2-core dev machine).
WORKERS_PER_CORE = 2


def _add_catalogue_reading(p: argparse.ArgumentParser) -> None:
    """Options of every command that reads a catalogue and its images."""
    p.add_argument("--strict", action="store_true", help="a malformed line is fatal")
    p.add_argument("--cache-dir", type=Path, help="downloaded images (default ~/.cache/firs/images)")
    p.add_argument(
        "--image-root",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="repeatable: a folder local image paths may lie in besides the catalogue's own",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_sources(p: argparse.ArgumentParser) -> None:
    """How catalogue sources are read and their images fetched (build and add)."""
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "amazon", "csv", "folder"],
        help="source format (auto: folder, *.csv, else Amazon JSON/dict lines)",
    )
    p.add_argument(
        "--columns",
        metavar="FIELD=COLUMN,...",
        help="CSV column names, e.g. image=filename,title=name; image=images/{id}.jpg builds the path from columns",
    )
    p.add_argument("--workers", type=int, default=16, help="concurrent downloads")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a download may wait for the server")
    p.add_argument("--deadline", type=float, default=60.0, help="seconds one download may take in all")
    p.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="fetch image URLs on loopback, private and link-local addresses (refused by default)",
    )
    p.add_argument("--retries", type=int, default=3, help="retries of a failed download")
    _add_catalogue_reading(p)


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="index a catalogue",
        description=(
            "Read catalogue SOURCEs (Amazon metadata .json/.gz, CSV, or an image folder), fetch "
            "their images, embed them and write an index directory."
        ),
    )
    p.add_argument("sources", nargs="+", type=Path, metavar="SOURCE", help="catalogue file or image folder")
    p.add_argument("--out", required=True, type=Path, metavar="INDEX_DIR", help="index directory to write")
    _add_sources(p)
    p.add_argument("--batch-size", type=int, default=32, help="images per embedding batch")
    p.add_argument(
        "--model", type=Path, metavar="MODEL_DIR", help="a `firs train` model: its learned garment embedding"
    )
    p.add_argument(
        "--whitening-dim",
        type=int,
        default=None,
        help="dimensions kept by the whitening (1024; 256 when --compress auto meets 200k products)",
    )
    p.add_argument(
        "--colour-weight",
        type=float,
        default=None,
        metavar="W",
        help="weight of the garment's colour and pattern signature in fine search, 0 to leave it out "
        "(0.6 with --model, else 1.0)",
    )
    p.add_argument(
        "--engine",
        choices=["local", "spark"],
        default="local",
        help="where images are fetched and embedded: this process, or a Spark cluster (needs pyspark, Java 17)",
    )
    p.add_argument(
        "--master",
        metavar="URL",
        help="the Spark master: local[*] (default), local[N], spark://HOST:7077, yarn; the index folder must be "
        "on a file system the executors share",
    )
    p.add_argument(
        "--partitions", type=int, metavar="N", help="catalogue partitions the embed stage works through (1 per 1000)"
    )
    p.add_argument(
        "--compress",
        choices=["auto", "none", "sq8", "sq8-exact"],  # index/ann.py COMPRESSIONS (not imported: faiss loads slowly)
        default="auto",
        help="the vectors in the ANN: float32 (none), 8 bits a dimension (sq8: a quarter of the memory), 8 bits "
        "for the graph walk and float32 for the scores (sq8-exact), or auto: sq8-exact below 160k products, none "
        "to 200k, sq8 and 256 whitened dimensions from 200k",
    )


def _add_add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "add",
        help="add or update products in a built index, in place",
        description=(
            "Read catalogue SOURCEs, fetch and embed their images with the index's own network and model, and "
            "add the products to INDEX_DIR in place: a product id the index holds already is updated (new image "
            "and/or metadata). A running `firs serve` sees the change within a second. `firs compact` later "
            "folds the changes into the index's files."
        ),
    )
    p.add_argument("sources", nargs="+", type=Path, metavar="SOURCE", help="catalogue file or image folder")
    p.add_argument("--index", required=True, type=Path, metavar="INDEX_DIR", help="an index written by `firs build`")
    _add_sources(p)


def _add_compact(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compact",
        help="fold products added and removed in place into the index's files",
        description="Write a new version of INDEX_DIR with the changes `firs add`/`remove` made in place folded "
        "in: removed products' vectors dropped, added ones in the shards and the graph. The whitening or model "
        "is kept. The new version replaces the old atomically; a running `firs serve` switches to it.",
    )
    p.add_argument("--index", required=True, type=Path, metavar="INDEX_DIR", help="an index written by `firs build`")


def _add_remove(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "remove",
        help="remove products from a built index, in place",
        description="Remove the products from INDEX_DIR in place; a running `firs serve` stops answering them "
        "within a second. `firs compact` drops their vectors for good.",
    )
    p.add_argument("ids", nargs="+", metavar="PRODUCT_ID", help="ids of products to remove")
    p.add_argument("--index", required=True, type=Path, metavar="INDEX_DIR", help="an index written by `firs build`")


def _add_reindex(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reindex",
        help="remake an index's whitening, head and ANN from its stored shards",
        description=(
            "Make the search structures of INDEX_DIR again from the features its build stored (shards/), "
            "without fetching or embedding anything: another learned head, whitening size, colour weight. "
            "The new index replaces the old one atomically."
        ),
    )
    p.add_argument("index", type=Path, metavar="INDEX_DIR", help="an index written by `firs build`")
    p.add_argument(
        "--model",
        type=Path,
        metavar="MODEL_DIR",
        help="a `firs train` model trained with --tune-blocks 0 (tuned backbone blocks need `firs build --model`)",
    )
    p.add_argument("--no-model", action="store_true", help="drop the index's model: PCA-whitening in every view")
    p.add_argument("--whitening-dim", type=int, help="dimensions kept by the whitening (as the index had)")
    p.add_argument("--colour-weight", type=float, metavar="W", help="the colour signature's weight (as the index had)")
    p.add_argument(
        "--compress",
        choices=["auto", "none", "sq8", "sq8-exact"],  # index/ann.py COMPRESSIONS (not imported: faiss loads slowly)
        help="the vectors in the ANN: float32 (none), 8-bit (sq8), 8-bit walk with float32 scores (sq8-exact), "
        "or auto (sq8-exact below 160k products, none to 200k, sq8 from 200k); as the index had",
    )


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="learn the garment embedding from pairs",
        description=(
            "Learn the garment embedding from query photos paired with catalogue products (PAIRS.tsv: "
            "query<TAB>product_id, paths relative to the file). Without --queries, the pairs come from the "
            "catalogue: products' other pictures that show the garment worn; with none anywhere, synthetic "
            "worn street versions of each product shot. Writes MODEL_DIR for `firs build --model`."
        ),
    )
    p.add_argument(
        "--queries",
        type=Path,
        metavar="PAIRS.tsv",
        help="query photos paired with product ids (default: mined from the catalogue)",
    )
    p.add_argument("--catalog", type=Path, nargs="+", required=True, metavar="SOURCE", help="the catalogue sources")
    p.add_argument("--out", type=Path, required=True, metavar="MODEL_DIR", help="the model folder to write")
    # Training defaults live in train.trainer.TrainOptions; an option not given keeps it.
    p.add_argument("--epochs", type=int, help="at most this many epochs, early stopping may end sooner (20)")
    p.add_argument("--dim", type=int, help="dimensions of the learned embedding (256)")
    p.add_argument("--val-fraction", type=float, help="share of products held out for validation (0.2)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="auto (default): the GPU when there is one")
    p.add_argument("--seed", type=int, help="seed of the split, the augmentations and the training (0)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in MODEL_DIR")
    p.add_argument(
        "--views",
        type=int,
        help="per query photo: its clean cut-out and VIEWS-1 street versions (3; made-up pairs: 4 street versions)",
    )
    p.add_argument(
        "--street-scenes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a photo's street versions: its person put into a street scene and cut out again "
        "(default), or with --no-street-scenes its cut-out altered",
    )
    p.add_argument(
        "--made-up-pairs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train on made-up street versions of the catalogue products no pair shows, at most as "
        "many as the real pairs (default); --no-made-up-pairs: the real pairs alone",
    )
    p.add_argument("--shared", action="store_true", help="one map for photos and products (default: one each)")
    p.add_argument("--feature-cache", type=Path, metavar="DIR", help="frozen features (default MODEL_DIR/cache)")
    p.add_argument("--learning-rate", type=float, help="AdamW step size (0.003)")
    p.add_argument("--margin", type=float, help="how much the right product's cosine must win by in the loss (0.2)")
    p.add_argument(
        "--tune-blocks",
        type=int,
        help="also train the backbone's last N blocks (2, all it has; 0: the heads alone on frozen features)",
    )
    p.add_argument(
        "--members",
        type=int,
        help="tuned tails trained apart, DIM shared out among them, searched as one (2; 1 with --tune-blocks 0)",
    )
    _add_catalogue_reading(p)


def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="find the products in a photo, or by words, or like a product",
        description=(
            "Search an index with a photo (modes simple, fine, tag), with words (--text), or "
            "for products like one (--like); --where filters any of them. Prints a table or --json."
        ),
    )
    p.add_argument("image", type=Path, nargs="?", metavar="IMAGE", help="the photo (JPEG, PNG, WebP, ...)")
    p.add_argument("--index", required=True, type=Path, metavar="INDEX_DIR")
    p.add_argument(
        "--mode",
        default="simple",
        choices=["simple", "fine", "tag"],
        help="simple: embed the whole photo; fine: find the garment on the person, search by it; "
        "tag: like fine, among the products whose labels match the garment's",
    )
    p.add_argument(
        "--region",
        default="auto",
        choices=["auto", "upper", "lower", "full", "feet"],
        help="fine/tag: which garment (auto: upper body, else full length, lower body, feet; or where the "
        "nearest products' catalogue labels say the garment is worn)",
    )
    p.add_argument("--all-items", action="store_true", help="fine/tag: search every garment found (shop the look)")
    p.add_argument("--text", metavar="WORDS", help="words: alone, a text search; with a photo, they narrow it")
    p.add_argument("--like", metavar="PRODUCT_ID", help="products like this one (no photo needed)")
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="filter, repeatable: brand=Acme, gender=Women, category=Dresses, colour=red, price<=50, price>=10",
    )
    p.add_argument("--top-k", type=int, default=10, metavar="K", help="how many products (10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="recall@k, mAP and latency over a queries file",
        description=("QUERIES.tsv has a header query<TAB>product_id; query paths are relative to its folder."),
    )
    p.add_argument("--index", required=True, type=Path, metavar="INDEX_DIR")
    p.add_argument("--queries", required=True, type=Path, metavar="QUERIES.tsv")
    p.add_argument("--mode", action="append", choices=["simple", "fine", "tag"], help="repeatable; default simple")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="the HTTP API and the web page",
        description="Serve an index over HTTP: the web page at /, the JSON API under /api, its docs at /docs.",
    )
    p.add_argument("--index", required=True, type=Path, metavar="INDEX_DIR")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="searches run at once (default: two per core, which keeps the cores busy while a search "
        "is between its networks)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="repeatable: a Host name to answer besides the listening address and localhost",
    )
    p.add_argument(
        "--admin-key-file",
        type=Path,
        metavar="FILE",
        help="turns on the admin API (add, remove, reload, compact) with the key in FILE (else $FIRS_ADMIN_KEY); "
        "without a key those routes do not exist",
    )
    p.add_argument(
        "--currency",
        type=_currency_code,
        metavar="CODE",
        help="ISO 4217 code (USD, EUR, GBP…) of the prices of products whose catalogue names no currency",
    )


def _currency_code(text: str) -> str:
    code = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise argparse.ArgumentTypeError(f"{text!r} is not a currency code: three letters, e.g. USD, EUR, GBP")
    return code


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="build and search a demo catalogue",
        description=(
            "Draw a demo catalogue of garments, index it, and search it with a photo of one of them "
            "drawn differently, hanging on a street wall, in mode fine. No network needed."
        ),
    )
    p.add_argument(
        "--catalog", type=Path, nargs="+", metavar="SOURCE", help="use a real catalogue instead of the drawn one"
    )
    p.add_argument("--query", type=Path, help="the photo to search with")
    p.add_argument("--workdir", type=Path, default=Path("demo"), help="where the demo files go")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="firs", description="FIRS: street-to-shop fashion search.")
    root.add_argument("--version", action="version", version=f"firs {__version__}")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_build(sub)
    _add_add(sub)
    _add_remove(sub)
    _add_compact(sub)
    _add_reindex(sub)
    _add_train(sub)
    _add_search(sub)
    _add_eval(sub)
    _add_serve(sub)
    _add_demo(sub)
    return root


def _reading(args: argparse.Namespace) -> dict[str, Any]:
    """The catalogue-reading options (`_add_sources`) as keyword arguments of BuildOptions/AddOptions."""
    from .catalog.csv_reader import parse_column_map
    from .catalog.fetch import FetchPolicy

    fetch = FetchPolicy(
        timeout=args.timeout,
        deadline=args.deadline,
        retries=args.retries,
        workers=args.workers,
        allow_private=args.allow_private_urls,
    )
    reading: dict[str, Any] = {
        "fmt": args.format,
        "strict": args.strict,
        "columns": parse_column_map(args.columns),
        "fetch": fetch,
        "image_roots": args.image_root,
        "progress": not args.quiet,
    }
    if args.cache_dir:
        reading["cache_dir"] = args.cache_dir
    return reading


def _run_build(args: argparse.Namespace) -> int:
    from .index.colour_fusion import check_weight
    from .pipeline.build import BuildOptions, build_index
    from .pipeline.summary import print_summary

    options = BuildOptions(
        **_reading(args),
        model=args.model,
        batch_size=args.batch_size,
        engine=args.engine,
        master=args.master,
        partitions=args.partitions,
    )
    if args.whitening_dim is not None:
        if args.whitening_dim < 1:
            raise FirsError("--whitening-dim must be at least 1")
        options.whitening_dim = args.whitening_dim
    if args.colour_weight is not None:
        try:
            options.colour_weight = check_weight(args.colour_weight)
        except ValueError as exc:
            raise FirsError(f"--colour-weight: {exc}") from None
    options.compress = args.compress
    if args.master and args.engine != "spark":
        raise FirsError("--master is for --engine spark")
    report = build_index(args.sources, args.out, options)
    print_summary(report, args.out)
    return 0


def _run_add(args: argparse.Namespace) -> int:
    from .pipeline.live_update import AddOptions, add_products

    options = AddOptions(**_reading(args))
    # Background work beside a live service: the searches on the same cores come first.
    with contextlib.suppress(OSError):
        os.nice(ADD_NICENESS)
    report = add_products(args.index, args.sources, options)
    print(
        f"{args.index}: added {len(report.added)}, updated {len(report.updated)}, "
        f"not added {len(report.failures)} of {report.read} read, in {report.seconds:.1f} s"
    )
    for product_id, reason in list(report.failures.items())[:10]:
        print(f"  not added: {product_id}: {reason}")
    for problem in report.problems[:10]:
        print(f"  skipped: {problem}")
    return 0


def _run_remove(args: argparse.Namespace) -> int:
    from .pipeline.live_update import remove_products

    report = remove_products(args.index, args.ids)
    print(f"{args.index}: removed {len(report.removed)}")
    if report.unknown:
        print(f"firs remove: not in the index: {', '.join(report.unknown)}", file=sys.stderr)
        return 1
    return 0


def _run_compact(args: argparse.Namespace) -> int:
    from .pipeline.compact import compact

    report = compact(args.index)
    if report is None:
        print(f"{args.index}: nothing to compact (no products were added or removed in place)")
        return 0
    print(
        f"{args.index}: compacted in {report.seconds:.1f} s: {report.products} products, "
        f"{report.folded} added in place folded in, {report.dropped} removed or replaced dropped"
    )
    return 0


def _run_reindex(args: argparse.Namespace) -> int:
    from .index.colour_fusion import check_weight
    from .pipeline.reindex import ReindexOptions, reindex

    if args.model and args.no_model:
        raise FirsError("--model or --no-model, not both")
    if args.whitening_dim is not None and args.whitening_dim < 1:
        raise FirsError("--whitening-dim must be at least 1")
    try:
        weight = None if args.colour_weight is None else check_weight(args.colour_weight)
    except ValueError as exc:
        raise FirsError(f"--colour-weight: {exc}") from None
    options = ReindexOptions(args.model, args.no_model, args.whitening_dim, weight, args.compress)
    manifest = reindex(args.index, options)
    dims = ", ".join(
        f"{view} {entry['dim']}-d ({entry['whitening']['method']})" for view, entry in manifest["views"].items()
    )
    seconds = manifest["reindexed"]["seconds"]
    print(f"reindexed {args.index}: {manifest['counts']['indexed']} products, {dims}, {seconds} s")
    return 0


def _print_first(lines: list[str], more: str, shown: int = 5) -> None:
    """The first `shown` lines, indented, then how many `more` there are."""
    for line in lines[:shown]:
        print(f"  {line}")
    if len(lines) > shown:
        print(f"  ... and {len(lines) - shown} more {more}")


def _run_train(args: argparse.Namespace) -> int:
    from .train.run import TrainSetup, train_model
    from .train.trainer import TrainOptions, has_checkpoint

    given = {
        name: getattr(args, name)
        for name in (
            "epochs",
            "dim",
            "val_fraction",
            "seed",
            "device",
            "learning_rate",
            "tune_blocks",
            "margin",
            "members",
        )
        if getattr(args, name) is not None
    }
    options = TrainOptions(**given, shared=args.shared)
    count = max(1, options.member_count)
    rules = {
        f"--epochs >= 1, not {options.epochs}": options.epochs >= 1,
        f"--dim >= 2, not {options.dim}": options.dim >= 2,
        f"0 <= --val-fraction < 1, not {options.val_fraction}": 0 <= options.val_fraction < 1,
        f"--views >= 1, not {args.views}": args.views is None or args.views >= 1,
        f"0 <= --margin < 1, not {options.margin}": 0 <= options.margin < 1,
        f"--members >= 1, not {options.members}": options.members >= 1,
        f"--dim ({options.dim}) split into --members ({count}) parts of at least 2 dimensions": (
            options.dim // count >= 2
        ),
    }
    broken = [rule for rule, holds in rules.items() if not holds]
    if broken:
        raise FirsError("; ".join(broken))
    setup = TrainSetup(
        catalog=args.catalog,
        out=args.out,
        pairs=args.queries,
        options=options,
        views=args.views,
        image_roots=args.image_root,
        strict=args.strict,
        resume=args.resume,
        progress=not args.quiet,
        scenes=args.street_scenes,
        made_up_pairs=args.made_up_pairs,
    )
    if args.cache_dir:
        setup.cache_dir = args.cache_dir
    setup.feature_cache = args.feature_cache
    if args.resume and not has_checkpoint(args.out):  # a mistyped --out would start over unseen
        print(f"firs train: --resume: no checkpoint in {args.out}; training starts at the first epoch", file=sys.stderr)
    report = train_model(setup)
    history = report.outcome.history
    tuned = options.tune_blocks
    print(f"model written to {args.out} ({f'the last {tuned} backbone block(s) tuned' if tuned else 'heads only'})")
    print(
        f"  pairs ({report.source}) {report.pairs}: train {report.train_pairs}, held out {report.val_pairs} "
        f"({report.val_products} products); catalogue {report.catalogue} products"
    )
    if report.made_up:
        print(f"  made-up pairs of products no pair shows: {report.made_up}, trained beside them")
    _print_first([f"skipped: {line}" for line in report.skipped], "skipped lines")
    _print_first([f"failed: {origin}: {reason}" for origin, reason in report.failed.items()], "failed pairs")
    _print_first(
        [f"catalogue product {pid} not used: {reason}" for pid, reason in report.catalogue_failed.items()],
        "catalogue products not used",
    )
    untrained, best = history[0], history[report.outcome.best_epoch]
    shown = [("untrained", untrained), (f"best (epoch {report.outcome.best_epoch})", best)]
    if len(report.members) > 1:
        shown = [("untrained", untrained)]
        shown += [
            (f"member {n + 1}, best (epoch {m.best_epoch})", m.history[m.best_epoch])
            for n, m in enumerate(report.members)
        ]
        shown += [("the model (members together)", report.validation)] if report.validation else []
    if not report.val_pairs:
        why = "--val-fraction 0" if options.val_fraction == 0 else "the usable pairs are of one product"
        print(f"  nothing held out ({why}): no validation recall; the last epoch's heads are kept")
        shown = []
    for name, entry in shown:
        print(
            f"  {name}: held-out R@1 {entry['val_R@1']:.3f} R@20 {entry['val_R@20']:.3f}; "
            f"street R@1 {entry['val_street_R@1']:.3f} R@20 {entry['val_street_R@20']:.3f}"
        )
    minutes = {k: round(v / 60, 1) for k, v in report.seconds.items()}
    print(f"  minutes: {minutes}" + ("; stopped early" if report.outcome.stopped_early else ""))
    return 0


def _results_table(results: list[dict[str, Any]]) -> list[str]:
    rows = [("#", "score", "id", "title", "brand", "category", "price")]
    for rank, r in enumerate(results, start=1):
        price = "" if r.get("price") is None else f"{r['price']:.2f}"
        rows.append(
            (
                str(rank),
                f"{r['score']:.3f}",
                r["id"],
                (r.get("title") or "")[:40],
                (r.get("brand") or "")[:16],
                (r.get("category") or "")[:20],
                price,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _region_line(region: dict[str, Any]) -> str:
    return f"region: {region['label']} {region['box']} (score {region['score']:.2f})"


def format_table(answer: dict[str, Any]) -> str:
    """A search answer as a person reads it: region(s), a results table, stage timings."""
    lines: list[str] = [answer[key] for key in ("fallback", "notice") if answer.get(key)]
    if "labels" in answer:
        labels = ", ".join(f"{t['label']} {t['confidence']:.2f}" for t in answer["labels"])
        lines.append(f"labels: {labels}")
        lines.append(f"candidates: {answer['candidates']} ({answer['candidate_rule']})")
    if "items" in answer:
        for item in answer["items"]:
            lines += [_region_line(item["region"]), *_results_table(item["results"]), ""]
    else:
        lines += [_region_line(region) for region in answer.get("regions", [])]
        lines += _results_table(answer["results"])
    timings = ", ".join(f"{k} {v:.1f}" for k, v in answer["timings_ms"].items())
    return "\n".join([*lines, f"timings (ms): {timings}"])


def _run_search(args: argparse.Namespace) -> int:
    from .search.engine import Query, SearchEngine
    from .search.filters import parse_where

    query = Query(
        image=args.image,
        text=args.text,
        like=args.like,
        mode=args.mode,
        k=args.top_k,
        region=args.region,
        all_items=args.all_items,
        where=[parse_where(text) for text in args.where],
    )
    answer = SearchEngine(args.index).search(query).as_dict()
    print(json.dumps(answer, ensure_ascii=False) if args.json else format_table(answer))
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from .eval.runner import evaluate
    from .search.engine import SearchEngine

    engine = SearchEngine(args.index)
    report = evaluate(engine, args.queries, args.mode or ["simple"], progress=not args.quiet)
    if args.json:
        print(json.dumps(report))
        return 0
    for mode, entry in report.items():
        recalls = "  ".join(f"{k} {v:.3f}" for k, v in entry.items() if k.startswith("recall@"))
        total = entry["timings_ms"]["total"]
        print(
            f"{mode}: {entry['n_queries']} queries  {recalls}  mAP {entry['mAP']:.3f}  "
            f"total p50 {total['p50']:.1f} ms p95 {total['p95']:.1f} ms"
        )
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    from .runtime import default_threads
    from .service.admin import read_admin_key
    from .service.app import serve

    workers = WORKERS_PER_CORE * default_threads() if args.workers is None else args.workers
    if workers < 1:
        raise FirsError(f"--workers must be at least 1, got {workers}")
    key = read_admin_key(args.admin_key_file, dict(os.environ))
    serve(args.index, args.host, args.port, workers, args.allowed_host, key, args.currency)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from .demo.run import run_demo

    run_demo(args.workdir, catalog=args.catalog, query=args.query)
    return 0


COMMANDS = {
    "build": _run_build,
    "reindex": _run_reindex,
    "train": _run_train,
    "search": _run_search,
    "eval": _run_eval,
    "add": _run_add,
    "remove": _run_remove,
    "compact": _run_compact,
    "serve": _run_serve,
    "demo": _run_demo,
}


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so an interrupted build removes its half-made index."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .runtime import limit_blas_threads, tune_allocator

    tune_allocator()
    limit_blas_threads()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return COMMANDS[args.command](args)
    except FirsError as exc:
        print(f"firs {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"firs {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # whoever read the output stopped (`firs ... | head`): no error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not fail again
        return 141  # as a shell reports a command ended by SIGPIPE
    except Exception as exc:  # a bug, not the user's input: one line, the trace on request
        if os.environ.get("FIRS_DEBUG"):
            raise
        print(
            f"firs {args.command}: internal error: {exc.__class__.__name__}: {exc} (FIRS_DEBUG=1 shows where)",
            file=sys.stderr,
        )
        return 1


def run() -> None:
    """The `firs` executable: main(), and after an interrupt an exit that nothing can delay or
    turn into another status (seen once: a build stopped by SIGTERM printed "interrupted", then
    ended by SIGINT instead of 130 while the interpreter shut its threads down)."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    run()

"""What each street augmentation of `firs train` is worth (issue 10's report).

For every dev pair the garment is cut out of the query photo once (as `firs train` does) and
kept. Then, for each set of augmentations — all of them, none, and all but one in turn — every
training pair gets one street version of its cut-out made with that set, and linear heads
(`firs train --tune-blocks 0`, a fixed number of epochs, no early stopping) are trained on the
frozen pooled features: clean cut-out and that street version. Each model is scored on the
held-out products' real street-like photos (bench/make_synthetic_queries.py scenes, their
garment cut out by the localiser) and their studio cut-outs, against every catalogue fine view.
Heads alone stand in for the tuned tail: 2 minutes a model instead of 20.

    python bench/augment_ablation.py --run bench/out/dev-t2 [--epochs 30]
RUN is a bench/devset_train.sh output folder (catalog.csv, street/queries.tsv, the model's
cached catalogue maps). Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from firs.catalog.problems import ProblemLog
from firs.catalog.sources import read_catalog
from firs.pipeline.views import FINE_RESIZE, region_for_categories
from firs.train.augment import AUGMENTATIONS, street_view
from firs.train.features import occluder_pictures
from firs.train.pairs import read_pairs
from firs.train.trainer import TrainOptions, split_by_product, train_heads
from firs.vision.decode import load_image
from firs.vision.embedder import Embedder
from firs.vision.localiser import GarmentLocaliser

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def cut_out(localiser: GarmentLocaliser, path: Path, categories: list[str]) -> Image.Image:
    located = localiser.locate(load_image(path), region=region_for_categories(categories), strict=False)
    return located.items[0].view


def embed(embedder: Embedder, pictures: list[Image.Image], desc: str) -> np.ndarray:
    out = []
    for begin in tqdm(range(0, len(pictures), 32), desc=desc, leave=False):
        batch = np.stack([embedder.prepare(p, FINE_RESIZE) for p in pictures[begin : begin + 32]])
        out.append(embedder.embed_arrays(batch))
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("bench/out/dev-t2"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    work = args.run / "ablation"
    work.mkdir(exist_ok=True)
    products, _ = read_catalog([args.run / "catalog.csv"], image_roots=[DATA])
    categories = {p.id: p.categories for p in products}
    pairs = read_pairs((DATA / "viton-dev" / "queries.tsv").resolve(), set(categories), ProblemLog(strict=False))
    options = TrainOptions(tune_blocks=0, epochs=args.epochs, patience=10_000, seed=args.seed)
    held = split_by_product([p.product_id for p in pairs], options.val_fraction, options.seed)
    with (args.run / "street" / "queries.tsv").open() as handle:
        street = {r["product_id"]: args.run / "street" / r["query"] for r in csv.DictReader(handle, delimiter="\t")}
    by_origin = {p.origin: p for p in pairs}
    embedder, localiser = Embedder(threads=2), GarmentLocaliser()

    cached = work / "frozen.npz"
    if cached.is_file():
        with np.load(cached) as data:
            ids, catalogue = [str(x) for x in data["ids"]], data["catalogue"]
            clean, street_features, kept = data["clean"], data["street"], [str(x) for x in data["kept"]]
    else:
        [maps_file] = sorted((args.run / "model" / "cache").glob("catalogue-*.npz"))
        with np.load(maps_file) as data, torch.inference_mode():
            ids, maps = [str(x) for x in data["ids"]], torch.from_numpy(data["features"])
            catalogue = torch.cat(
                [embedder.pool(embedder.original_tail(maps[i : i + 256].float())) for i in range(0, len(maps), 256)]
            ).numpy()
        cuts, kept = [], []
        for pair in tqdm(pairs, desc="cut-outs"):
            if pair.product_id in held and pair.product_id not in street:
                continue
            cuts.append(cut_out(localiser, Path(pair.query), categories[pair.product_id]))
            kept.append(pair.origin)
            cuts[-1].save(work / f"cut-{len(kept) - 1}.png")
        clean = embed(embedder, cuts, "clean")
        held_rows = [i for i, o in enumerate(kept) if by_origin[o].product_id in held]
        scenes = [cut_out(localiser, street[by_origin[kept[i]].product_id], ["tops"]) for i in tqdm(held_rows)]
        street_features = np.zeros_like(clean)
        street_features[held_rows] = embed(embedder, scenes, "street scenes")
        np.savez(cached, ids=np.array(ids), catalogue=catalogue, clean=clean, street=street_features, kept=kept)
    chosen = [by_origin[o] for o in kept]
    row_of = {product_id: row for row, product_id in enumerate(ids)}
    targets = np.array([row_of[p.product_id] for p in chosen])
    val_rows = np.array([i for i, p in enumerate(chosen) if p.product_id in held])
    train_rows = np.setdiff1d(np.arange(len(chosen)), val_rows)
    occluders = occluder_pictures([p.image for p in products], args.seed)
    print(f"catalogue {len(ids)}; pairs {len(chosen)}: train {len(train_rows)}, held out {len(val_rows)}")
    settings = [("all", AUGMENTATIONS), ("none", ())] + [
        (f"all but {name}", tuple(a for a in AUGMENTATIONS if a != name)) for name in AUGMENTATIONS
    ]
    for name, kinds in settings:
        clock = time.perf_counter()
        views = clean.copy()
        if kinds:
            pictures = []
            for row in train_rows:
                rng = random.Random(f"{args.seed}:{kept[row]}")
                cut = Image.open(work / f"cut-{row}.png").convert("RGB")
                pictures.append(street_view(cut, rng, occluders, kinds))
            views[train_rows] = embed(embedder, pictures, name)
        views[val_rows] = street_features[val_rows]  # validation's "street" column: the real scenes
        queries = np.stack([clean, views], axis=1)
        outcome = train_heads(catalogue, queries, targets, val_rows, options, work / "model", name, progress=False)
        last = outcome.history[-1]
        print(
            f"{name:24s} studio R@1 {last['val_R@1']:.3f} R@20 {last['val_R@20']:.3f}  street scenes R@1 "
            f"{last['val_street_R@1']:.3f} R@20 {last['val_street_R@20']:.3f}  ({time.perf_counter() - clock:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()

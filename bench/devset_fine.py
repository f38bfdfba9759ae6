"""Fine-search ingredients on the dev set: what each step of garment localisation buys.

Gallery: each product image either tight-cropped (flat backdrop, no person) or, when a
person wears it, cut out by the garment mask. Queries (the parse-annotated subset, so an
oracle mask can be compared): whole photo; upper-body box; + person mask; + garment mask
(colour classes); + GrabCut; oracle parse mask. Features cached in bench/out/fine-*.npz.
    python bench/devset_fine.py [--limit N]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from devset_recall import recalls
from PIL import Image
from tqdm import tqdm

from firs.index.whitening import fit_whitening
from firs.runtime import default_threads, tune_allocator
from firs.vision.crops import masked_on_white, tight_crop
from firs.vision.decode import load_image
from firs.vision.embedder import Embedder, EmbedderSpec
from firs.vision.garment_mask import garment_mask
from firs.vision.pose import PoseEstimator
from firs.vision.regions import body_regions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
QUERY_VARIANTS = ("whole", "box", "box+person", "garment", "garment+grabcut", "oracle")


def upper(pose, shape):
    if pose is None:
        return None
    return next((r for r in body_regions(pose, shape) if r.name == "upper"), None)


def catalogue_view(image: Image.Image, estimator: PoseEstimator) -> Image.Image:
    rgb = np.asarray(image)
    pose = estimator.estimate(rgb)
    region = upper(pose, rgb.shape[:2])
    if region is not None:
        return masked_on_white(rgb, garment_mask(rgb, pose, region))
    return tight_crop(image)


def query_views(image: Image.Image, parse: np.ndarray | None, estimator: PoseEstimator) -> dict[str, Image.Image]:
    rgb = np.asarray(image)
    pose = estimator.estimate(rgb)
    region = upper(pose, rgb.shape[:2])
    views = {"whole": image}
    if region is None:
        views.update({name: image for name in QUERY_VARIANTS[1:5]})
    else:
        views["box"] = image.crop(region.box)
        views["box+person"] = masked_on_white(rgb, region.mask & (pose.mask > 0.5))
        views["garment"] = masked_on_white(rgb, garment_mask(rgb, pose, region))
        views["garment+grabcut"] = masked_on_white(rgb, garment_mask(rgb, pose, region, grabcut=True))
    if parse is not None:
        views["oracle"] = masked_on_white(rgb, np.isin(parse, (5, 6, 7)))
    return views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    tune_allocator()
    embedder = Embedder(EmbedderSpec(resize="pad"), threads=default_threads())
    whole = Embedder(EmbedderSpec(resize="crop"), threads=default_threads())
    estimator = PoseEstimator()
    cache = args.out / "fine-gallery.npz"
    gallery_paths = sorted((DATA / "viton-dev" / "products").glob("*.jpg")) + sorted(
        (DATA / "distractors").glob("*.jpg")
    )
    ids = np.array([p.stem for p in gallery_paths])
    if cache.exists():
        gallery = np.load(cache)["features"]
    else:
        blocks, batch = [], []
        for path in tqdm(gallery_paths, desc="gallery"):
            batch.append(embedder.prepare(catalogue_view(load_image(path), estimator)))
            if len(batch) == 32:
                blocks.append(embedder.embed_arrays(np.stack(batch)))
                batch = []
        if batch:
            blocks.append(embedder.embed_arrays(np.stack(batch)))
        gallery = np.concatenate(blocks)
        np.savez(cache, features=gallery, ids=ids)
    with (DATA / "viton-dev" / "queries.tsv").open() as handle:
        rows = [
            r
            for r in csv.DictReader(handle, delimiter="\t")
            if (DATA / "viton-dev" / "parse" / (Path(r["query"]).stem + ".png")).exists()
        ]
    if args.limit:
        rows = rows[: args.limit]
    features: dict[str, list[np.ndarray]] = {name: [] for name in QUERY_VARIANTS}
    for row in tqdm(rows, desc="queries"):
        path = DATA / "viton-dev" / row["query"]
        parse = np.asarray(Image.open(DATA / "viton-dev" / "parse" / f"{path.stem}.png"))
        for name, view in query_views(load_image(path), parse, estimator).items():
            model = whole if name == "whole" else embedder
            features[name].append(model.embed(view))
    truth = [r["product_id"] for r in rows]
    whole_gallery = np.load(args.out / "feat-efficientnet-lite0-224-crop.npz")["gallery_gem"]
    whole_gallery = whole_gallery / np.linalg.norm(whole_gallery, axis=1, keepdims=True)
    print(f"{len(rows)} parse-annotated queries against {len(ids)} gallery images")
    print(f"{'query':18s} {'gallery':22s} {'whitening':10s}  R@1    R@10   R@20")
    for name in QUERY_VARIANTS:
        q = np.stack(features[name])
        g = whole_gallery if name == "whole" else gallery
        side = "whole, centre crop" if name == "whole" else "tight crop / garment"
        w = fit_whitening(g, 1024)
        for label, (gg, qq) in (("none", (g, q)), ("pca1024", (w.apply(g), w.apply(q)))):
            r1, r10, r20 = recalls(gg, qq, ids, truth)
            print(f"{name:18s} {side:22s} {label:10s}  {r1:.3f}  {r10:.3f}  {r20:.3f}", flush=True)
    q = np.stack(features["garment"])
    w = fit_whitening(whole_gallery, 1024)
    r1, r10, r20 = recalls(w.apply(whole_gallery), w.apply(q), ids, truth)
    print(f"{'garment':18s} {'whole, centre crop':22s} {'pca1024':10s}  {r1:.3f}  {r10:.3f}  {r20:.3f}")


if __name__ == "__main__":
    main()

"""Which colour signature? Hard vs soft (trilinear) binning, full vs half resolution (issue 10).

Computes the signature variants of every dev catalogue fine view and of every query cut-out
(clean and one street version, the same draws as bench/exp_backbone_tail.py) and stores them in
OUT/signatures.npz, aligned with that script's caches, whose `--colour NAME` then scores them
fused with trained heads. Alone, this prints each variant's colour-only recall and its fusion
with the untrained (PCA-whitened) embedding, on the held-out products.
    python bench/colour_signature_dev.py [--out bench/out/tail]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from firs.catalog.sources import read_catalog
from firs.pipeline.build import catalogue_loader
from firs.pipeline.embed_stage import embed_images
from firs.train.features import query_features
from firs.train.pairs import Pair
from firs.train.trainer import recall
from firs.vision.colour_signature import BINS, SIZE, colour_signatures, garment_pixels, signature
from firs.vision.embedder import Embedder
from firs.vision.localiser import GarmentLocaliser

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VARIANTS = ("hard", "soft", "soft-half")


def soft_counts(pixels: np.ndarray) -> np.ndarray:
    """Each pixel shared among the 8 cell centres around it (trilinear weights), so that a
    shade of light moving a colour across a cell border changes the histogram a little."""
    position = np.clip(pixels * BINS - 0.5, 0, BINS - 1)  # in cells, 0 = the first cell's centre
    low = np.minimum(np.floor(position), BINS - 2).astype(np.int64)
    high_share = (position - low).astype(np.float32)
    shares = np.zeros((len(pixels), 3, BINS), np.float32)  # per channel, the pixel's share of each cell
    np.put_along_axis(shares, low[..., None], (1 - high_share)[..., None], axis=2)
    np.put_along_axis(shares, low[..., None] + 1, high_share[..., None], axis=2)
    red_green = (shares[:, 0, :, None] * shares[:, 1, None, :]).reshape(len(pixels), BINS * BINS)
    return (red_green.T @ shares[:, 2]).ravel().astype(np.float64)  # cell (r, g, b) at (r * BINS + g) * BINS + b


def soft_signatures(batch: np.ndarray) -> np.ndarray:
    """colour_signatures with each pixel shared among the 8 cell centres around it."""
    return np.stack([signature(soft_counts(pixels)) for pixels in garment_pixels(batch)])


def variants(batch: np.ndarray) -> np.ndarray:
    half = batch[:, :, ::2, ::2]
    return np.concatenate([colour_signatures(batch), soft_signatures(batch), soft_signatures(half)], axis=1)


class SignatureEmbedder:
    """Looks like an Embedder to the feature code; its 'features' are the signature variants."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.identity = {**embedder.identity, "weights_sha256": "colour-variants-1"}

    def prepare(self, image: Any, resize: str | None = None) -> np.ndarray:
        return self.embedder.prepare(image, resize)

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, None]:
        return variants(batch), None


def compute(out: Path, catalog: Path) -> dict[str, np.ndarray]:
    target = out / "signatures.npz"
    if target.is_file():
        with np.load(target) as stored:
            return {key: stored[key] for key in stored.files}
    embedder = Embedder(threads=None)
    signer, localiser = SignatureEmbedder(embedder), GarmentLocaliser()
    products, _ = read_catalog([catalog], image_roots=[DATA])
    load = catalogue_loader(embedder, localiser, {p.id: p.categories for p in products}, fine_only=True)
    done = embed_images([(p.id, p.image) for p in products], signer, load, desc="catalogue signatures")  # type: ignore[arg-type]
    pairs_tsv = DATA / "viton-dev" / "queries.tsv"
    with pairs_tsv.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    pairs = [Pair(pairs_tsv.parent / r["query"], r["product_id"], f"{pairs_tsv}:{n + 2}") for n, r in enumerate(rows)]
    known = set(done.ids)
    pairs = [p for p in pairs if p.product_id in known]
    cats = {p.id: p.categories for p in products}
    queries = query_features(pairs, cats, signer, localiser, out, [p.image for p in products], views=2)  # type: ignore[arg-type]
    result = {
        "ids": np.array(done.ids),
        "catalogue": done.features["fine"].astype(np.float32),
        "origins": np.array([p.origin for p in queries.pairs]),
        "queries": queries.features.astype(np.float32),
    }
    np.savez(target, **result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/out/tail"))
    parser.add_argument("--catalog", type=Path, default=Path("bench/out/dev/catalog.csv"))
    parser.add_argument("--heldout", type=Path, default=Path("bench/out/dev/heldout.tsv"))
    args = parser.parse_args()
    clock = time.perf_counter()
    sig = compute(args.out, args.catalog)
    print(f"signatures ready in {time.perf_counter() - clock:.0f} s")
    with args.heldout.open() as handle:
        held = {r["product_id"] for r in csv.DictReader(handle, delimiter="\t")}
    ids = [str(x) for x in sig["ids"]]
    row = {pid: i for i, pid in enumerate(ids)}
    with (DATA / "viton-dev" / "queries.tsv").open() as handle:
        products_of = [r["product_id"] for r in csv.DictReader(handle, delimiter="\t")]
    origins = [str(o) for o in sig["origins"]]
    product = [products_of[int(o.rsplit(":", 1)[1]) - 2] for o in origins]
    val = np.array([i for i, p in enumerate(product) if p in held])
    targets = torch.tensor([row[p] for p in product])
    print(f"catalogue {len(ids)}, held-out queries {len(val)}")
    for number, name in enumerate(VARIANTS):
        cat = torch.from_numpy(sig["catalogue"][:, number * SIZE : (number + 1) * SIZE])
        for view, label in ((0, "studio"), (1, "street")):
            qs = torch.from_numpy(sig["queries"][val, view, number * SIZE : (number + 1) * SIZE])
            found = recall(qs @ cat.T, targets[val])
            print(f"{name:10s} colour alone, {label}: R@1 {found['R@1']:.3f} R@20 {found['R@20']:.3f}")


if __name__ == "__main__":
    main()

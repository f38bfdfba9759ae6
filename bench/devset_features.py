"""Embed the dev set (viton-dev products + distractors + queries) under one preprocessing.

Writes bench/out/feat-<model>-<resize>.npz with GeM and average pooled features, for
bench/devset_recall.py to compare whitening and pooling choices without re-embedding.
    python bench/devset_features.py --model efficientnet-lite0 --resize pad
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from firs.runtime import default_threads, tune_allocator
from firs.vision.decode import load_image
from firs.vision.embedder import Embedder, EmbedderSpec

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def dev_files(data: Path) -> tuple[list[str], list[Path], list[Path], list[str]]:
    """Gallery ids and paths, query paths and their correct product ids."""
    gallery = sorted((data / "viton-dev" / "products").glob("*.jpg"))
    gallery += sorted((data / "distractors").glob("*.jpg"))
    with (data / "viton-dev" / "queries.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    queries = [data / "viton-dev" / row["query"] for row in rows]
    return [p.stem for p in gallery], gallery, queries, [row["product_id"] for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--resize", default="pad")
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    tune_allocator()
    size = args.size or {"efficientnet-lite0": 224, "efficientnet-lite2": 260}[args.model]
    embedder = Embedder(EmbedderSpec(model=args.model, input_size=size, resize=args.resize), threads=default_threads())
    ids, gallery, queries, truth = dev_files(args.data)
    out: dict[str, np.ndarray] = {"ids": np.array(ids), "truth": np.array(truth)}
    start = time.perf_counter()
    for name, paths in (("gallery", gallery), ("queries", queries)):
        gem, avg = [], []
        for i in tqdm(range(0, len(paths), 32), desc=name):
            batch = np.stack([embedder.prepare(load_image(p)) for p in paths[i : i + 32]])
            with torch.inference_mode():
                fmap = embedder.net.extract_features(torch.from_numpy(batch))
            gem.append(fmap.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3).numpy())
            avg.append(fmap.mean(dim=(2, 3)).numpy())
        out[f"{name}_gem"] = np.concatenate(gem)
        out[f"{name}_avg"] = np.concatenate(avg)
    seconds = time.perf_counter() - start
    n = len(gallery) + len(queries)
    print(f"{args.model} {size}px {args.resize}: {n} images in {seconds:.0f} s = {1000 * seconds / n:.1f} ms/image")
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / f"feat-{args.model}-{size}-{args.resize}.npz", **out)


if __name__ == "__main__":
    main()

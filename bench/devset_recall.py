"""Recall@1/10/20 on the dev set for each pooling x whitening choice (exact search).

Reads the feature files written by bench/devset_features.py; whitening is fitted on the
gallery (catalogue) features only, as `firs build` does.
    python bench/devset_recall.py bench/out/feat-efficientnet-lite0-224-pad.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from firs.index.whitening import fit_whitening


def recalls(gallery: np.ndarray, queries: np.ndarray, ids: np.ndarray, truth: np.ndarray) -> list[float]:
    position = {pid: i for i, pid in enumerate(ids)}
    target = np.array([position[t] for t in truth])
    scores = queries @ gallery.T
    correct = scores[np.arange(len(queries)), target]
    rank = (scores > correct[:, None]).sum(axis=1) + 1
    return [float((rank <= k).mean()) for k in (1, 10, 20)]


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("features", type=Path, nargs="+")
    parser.add_argument("--dims", default="128,256,512,1024")
    parser.add_argument("--shrinks", default="auto,0.1,1")
    args = parser.parse_args()
    print("features                                  pool  whitening        R@1    R@10   R@20")
    for path in args.features:
        data = np.load(path)
        ids, truth = data["ids"], data["truth"]
        for pool in ("gem", "avg"):
            gallery, queries = normalise(data[f"gallery_{pool}"]), normalise(data[f"queries_{pool}"])
            rows = [("none", recalls(gallery, queries, ids, truth))]
            for dim in map(int, args.dims.split(",")):
                for shrink in [None if s == "auto" else float(s) for s in args.shrinks.split(",")]:
                    w = fit_whitening(gallery, dim, shrink)
                    rows.append((f"pca{dim} s{w.shrink:.2g}", recalls(w.apply(gallery), w.apply(queries), ids, truth)))
            for name, (r1, r10, r20) in rows:
                print(f"{path.stem:40s}  {pool:4s}  {name:15s}  {r1:.3f}  {r10:.3f}  {r20:.3f}", flush=True)


if __name__ == "__main__":
    main()

"""Preparing pictures for the embedder: each resampling's time and how far its input and features
are from Pillow's antialiased bilinear (what every index before "area-linear" was built with).

    python bench/prepare_speed.py --queries bench/out/dev-v5/street/queries.tsv [--n 200]

For each photo and resize policy: ms per prepare (p50), the mean gap in grey levels (0-255) to
Pillow's, and the cosine between the embedder's features of the two preparations (median, least).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from firs.eval.queries import read_queries
from firs.runtime import limit_blas_threads
from firs.vision.decode import decode_photo
from firs.vision.embedder import STD, Embedder, prepare
from firs.vision.resample import RESAMPLERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", required=True, help="a queries file (firs eval's format): its photos")
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    limit_blas_threads()
    embedder = Embedder()
    photos = [decode_photo(q.path.read_bytes(), str(q.path)).image for q in read_queries(args.queries)[: args.n]]
    sizes = np.array([p.size for p in photos])
    print(f"machine: {platform.machine()}, {len(photos)} photos, median size {np.median(sizes, axis=0).astype(int)}")
    grey = np.asarray(STD)[:, None, None] * 255
    for resize in ("crop", "pad"):
        prepared: dict[str, list[np.ndarray]] = {}
        for resample in RESAMPLERS:
            times, arrays = [], []
            for photo in photos:
                start = time.perf_counter()
                arrays.append(prepare(photo, 224, resize, resample))
                times.append((time.perf_counter() - start) * 1000)
            prepared[resample] = arrays
            print(f"{resize:5s} {resample:13s} p50 {np.median(times):6.3f} ms")
        reference = prepared["pil-bilinear"]
        features = {r: embedder.embed_arrays(np.stack(a)) for r, a in prepared.items()}
        for resample in RESAMPLERS:
            if resample == "pil-bilinear":
                continue
            gaps = [float(np.abs((a - b) * grey).mean()) for a, b in zip(prepared[resample], reference, strict=True)]
            cosines = np.sum(features[resample] * features["pil-bilinear"], axis=1)
            print(
                f"{resize:5s} {resample} vs pil-bilinear: {np.mean(gaps):.2f} grey levels;"
                f" feature cosine median {np.median(cosines):.4f}, least {cosines.min():.4f}"
            )


if __name__ == "__main__":
    main()

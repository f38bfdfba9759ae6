"""Embedding speed, ms/image at batch 1 and batched, with and without the allocator tuning.

Each setting runs in a fresh process (glibc reads allocator settings per process).
    python bench/embed_speed.py [--model efficientnet-lite0] [--batch 32]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from firs.runtime import default_threads, tune_allocator
from firs.vision.embedder import Embedder, EmbedderSpec


def measure(model: str, size: int, batch: int, tuned: bool) -> tuple[float, float]:
    if tuned:
        tune_allocator()
    embedder = Embedder(EmbedderSpec(model=model, input_size=size), threads=default_threads())
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, 3, size, size)).astype(np.float32)
    many = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    for _ in range(3):
        embedder.embed_arrays(one)
    embedder.embed_arrays(many)
    start = time.perf_counter()
    for _ in range(40):
        embedder.embed_arrays(one)
    single = (time.perf_counter() - start) / 40
    start = time.perf_counter()
    for _ in range(4):
        embedder.embed_arrays(many)
    batched = (time.perf_counter() - start) / (4 * batch)
    return single * 1000, batched * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--child", choices=["tuned", "default"])
    args = parser.parse_args()
    size = args.size or {"efficientnet-lite0": 224, "efficientnet-lite2": 260}[args.model]
    if args.child:
        single, batched = measure(args.model, size, args.batch, args.child == "tuned")
        print(
            f"{args.model} {size}px allocator={args.child:8s} batch 1: {single:6.1f} ms/image   "
            f"batch {args.batch}: {batched:6.1f} ms/image   ({default_threads()} threads)"
        )
        return
    for mode in ("default", "tuned"):
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--model",
                args.model,
                "--size",
                str(size),
                "--batch",
                str(args.batch),
                "--child",
                mode,
            ],
            check=True,
        )


if __name__ == "__main__":
    main()

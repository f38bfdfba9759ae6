"""Per-stage latency of each search mode against the reference forward, in one process.

    python bench/mode_latency.py --index INDEX --queries QUERIES.tsv [--n 300] [--sequential] [--phone]

The reference is the embedder's network in plain PyTorch eager at batch 1 (what issue 14's
targets are stated against), timed before the queries and again after them: the gap between
the two is the machine's noise. Modes run interleaved per query so both see the same machine
state (or, with --sequential, one mode after the other, as `firs eval` does). Prints each
stage's p50/p95 in ms and its p50 as a multiple of the reference, and each mode's total.
With --phone, each photo is first scaled up to a phone camera's 4032x3024 (bicubic, JPEG
quality 90) and uploaded so: the size a shopper's photo has, though smoother than a real one
(less detail decodes faster).
"""

from __future__ import annotations

import argparse
import io
import platform
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from firs.eval.queries import read_queries
from firs.runtime import default_threads, limit_blas_threads, tune_allocator
from firs.search.engine import Query, SearchEngine
from firs.vision.embedder import Embedder


def eager_reference(threads: int | None = None) -> Embedder:
    """The embedder's network in plain PyTorch eager, set up as `firs` starts (allocator tuned,
    NumPy's BLAS on one thread): without that the same forward reads ~24 against ~17 ms."""
    tune_allocator()
    limit_blas_threads()
    return Embedder(threads=threads or default_threads(), runtime="torch")


def reference_ms(eager: Embedder, repeats: int = 40) -> float:
    """p50 of eager PyTorch's batch-1 forward of the embedder's network."""
    one = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    for _ in range(3):
        eager.forward(one)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        eager.forward(one)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def phone_size(path: Path, long_side: int = 4032) -> bytes:
    image = Image.open(path).convert("RGB")
    scale = long_side / max(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--modes", default="simple,fine")
    parser.add_argument("--sequential", action="store_true", help="all queries in one mode, then the next mode")
    parser.add_argument("--threads", type=int, default=None, help="inference threads (default: one per core)")
    parser.add_argument("--phone", action="store_true", help="photos scaled up to 4032x3024 JPEGs first")
    args = parser.parse_args()
    eager = eager_reference(args.threads)  # first: it sets up the process as `firs` itself starts
    engine = SearchEngine(args.index, threads=args.threads)
    modes = args.modes.split(",")
    queries = read_queries(args.queries)[: args.n]
    for mode in modes:  # warm-up: models loaded, first-call costs paid
        engine.search(Query(image=queries[0].path, mode=mode))
    before = reference_ms(eager)
    stages: dict[str, dict[str, list[float]]] = {mode: defaultdict(list) for mode in modes}
    photos = [phone_size(q.path) if args.phone else q.path.read_bytes() for q in queries]
    order = [(m, d) for m in modes for d in photos] if args.sequential else [(m, d) for d in photos for m in modes]
    for mode, data in tqdm(order, desc="latency"):
        for stage, ms in engine.search(Query(image=data, mode=mode)).timings_ms.items():
            stages[mode][stage].append(ms)
    after = reference_ms(eager)
    reference = (before + after) / 2
    sizes = f"{'phone-size ' if args.phone else ''}photos"
    print(f"machine: {platform.processor() or platform.machine()}, {len(photos)} {sizes}")
    print(f"reference (eager PyTorch batch-1 forward): {before:.1f} ms before, {after:.1f} ms after")
    for mode in modes:
        print(f"{mode}:")
        for stage, values in stages[mode].items():
            p50 = np.median(values)
            p95 = np.percentile(values, 95)
            print(f"  {stage:8s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  {p50 / reference:5.2f} x reference")
    if "fine" in stages:
        fine = stages["fine"]
        both = np.median(np.add(fine["detect"], fine["segment"]))
        print(f"fine detect + segment p50 {both:.1f} ms = {both / reference:.2f} x reference")


if __name__ == "__main__":
    main()

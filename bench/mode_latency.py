"""Per-stage latency of each search mode, measured in one process, modes interleaved per
query so both see the same machine state (or, with --sequential, one mode after the other,
as `firs eval` does); prints p50/p95 and the total ratio to the first mode.
    python bench/mode_latency.py --index bench/out/dev-index --queries ../shared/data/viton-dev/queries.tsv
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from firs.eval.queries import read_queries
from firs.runtime import tune_allocator
from firs.search.engine import Query, SearchEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--modes", default="simple,fine")
    parser.add_argument("--sequential", action="store_true", help="all queries in one mode, then the next mode")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")
    args = parser.parse_args()
    tune_allocator()
    engine = SearchEngine(args.index, threads=args.threads)
    modes = args.modes.split(",")
    queries = read_queries(args.queries)[: args.n]
    for mode in modes:  # warm-up: models loaded, first-call costs paid
        engine.search(Query(image=queries[0].path, mode=mode))
    stages: dict[str, dict[str, list[float]]] = {mode: defaultdict(list) for mode in modes}
    photos = [query.path.read_bytes() for query in queries]
    order = [(m, d) for m in modes for d in photos] if args.sequential else [(m, d) for d in photos for m in modes]
    for mode, data in tqdm(order, desc="latency"):
        for stage, ms in engine.search(Query(image=data, mode=mode)).timings_ms.items():
            stages[mode][stage].append(ms)
    base = np.median(stages[modes[0]]["total"])
    for mode in modes:
        parts = "  ".join(f"{stage} {np.median(v):.1f}/{np.percentile(v, 95):.1f}" for stage, v in stages[mode].items())
        ratio = np.median(stages[mode]["total"]) / base
        print(f"{mode:7s} p50/p95 ms: {parts}   total p50 = {ratio:.2f} x {modes[0]}")


if __name__ == "__main__":
    main()

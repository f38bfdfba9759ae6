"""Filtered vs unfiltered ANN search: latency and recall@10 (against exact search within the
allowed set) at several filter selectivities, on a built index's simple view.

Allowed sets: random subsets of the catalogue (share 1.0 = no filter) and the real posting
lists of the index's most common labels. Query vectors: the dev queries' whole photos.
    python bench/filtered_latency.py --index bench/out/dev-index --queries ../shared/data/viton-dev/queries.tsv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from firs.eval.queries import read_queries
from firs.runtime import tune_allocator
from firs.search.engine import SearchEngine
from firs.vision.decode import load_image

SHARES = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    tune_allocator()
    engine = SearchEngine(args.index)
    view = engine.views["simple"]
    queries = read_queries(args.queries)[: args.n]
    vectors = np.concatenate([view.whitening.apply(engine.embedder.embed(load_image(q.path))[None]) for q in queries])
    everything = view.ann.base.index.reconstruct_n(0, len(view.ann.base))
    rng = np.random.default_rng(0)
    sets: list[tuple[str, np.ndarray | None]] = []
    for share in SHARES:
        chosen = None if share == 1.0 else np.sort(rng.choice(len(view.ann), int(share * len(view.ann)), replace=False))
        sets.append((f"random {share:.3f}", chosen))
    for label, count in sorted(engine.postings.counts().items(), key=lambda item: -item[1])[:4]:
        sets.append((f"{label} ({count / len(view.ann):.3f})", engine.postings[label]))
    print(f"{len(view.ann)} products, {len(vectors)} queries, k={args.k}")
    print(f"{'allowed set':28s} {'size':>6s}  p50 ms  p95 ms  recall@{args.k}")
    for name, allowed in sets:
        times, hits = [], []
        for vector in vectors:
            start = time.perf_counter()
            labels, _ = view.ann.query(vector, args.k, allowed)
            times.append((time.perf_counter() - start) * 1000)
            pool = np.arange(len(view.ann)) if allowed is None else allowed
            exact = pool[np.argsort(-(everything[pool] @ vector))[: args.k]]
            hits.append(len(set(exact.tolist()) & set(labels[0].tolist())) / len(exact))
        size = len(view.ann) if allowed is None else len(allowed)
        print(
            f"{name:28s} {size:6d}  {np.median(times):6.2f}  {np.percentile(times, 95):6.2f}  {np.mean(hits):.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

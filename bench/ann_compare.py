"""Compare HNSW libraries at FIRS's dimension: recall@10 vs exact, query time, build time, size.

Vectors: the whitened dev-set gallery features, grown to --n vectors by mixing pairs of real
vectors with noise (same distribution shape, no duplicates); queries: whitened dev queries.
    python bench/ann_compare.py bench/out/feat-efficientnet-lite0-224-pad.npz --dim 1024 --n 120000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from grown import grow

from firs.index.whitening import fit_whitening


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    top = []
    for start in range(0, len(queries), 256):
        scores = queries[start : start + 256] @ vectors.T
        top.append(np.argpartition(-scores, k, axis=1)[:, :k])
    return np.concatenate(top)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def timed_queries(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    found = np.stack([search(q) for q in queries])
    return found, (time.perf_counter() - start) / len(queries) * 1000


def bench_hnswlib(vectors, queries, efs, k, m, efc):
    import hnswlib

    start = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), M=m, ef_construction=efc)
    index.add_items(vectors, np.arange(len(vectors)), num_threads=os.cpu_count())
    build = time.perf_counter() - start
    index.set_num_threads(1)
    size = _size(lambda p: index.save_index(p))
    for ef in efs:
        index.set_ef(ef)
        found, ms = timed_queries(lambda q: index.knn_query(q, k=k)[0][0], queries)
        yield f"hnswlib ef={ef}", build, ms, found, size


def bench_faiss(vectors, queries, efs, k, m, efc):
    import faiss

    faiss.omp_set_num_threads(os.cpu_count())
    start = time.perf_counter()
    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = efc
    index.add(vectors)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    size = _size(lambda p: faiss.write_index(index, p))
    for ef in efs:
        index.hnsw.efSearch = ef
        found, ms = timed_queries(lambda q: index.search(q[None], k)[1][0], queries)
        yield f"faiss ef={ef}", build, ms, found, size


def bench_usearch(vectors, queries, efs, k, m, efc):
    from usearch.index import Index

    start = time.perf_counter()
    index = Index(ndim=vectors.shape[1], metric="ip", dtype="f32", connectivity=m, expansion_add=efc)
    index.add(np.arange(len(vectors)), vectors, threads=os.cpu_count())
    build = time.perf_counter() - start
    size = _size(lambda p: index.save(p))
    for ef in efs:
        index.expansion_search = ef
        found, ms = timed_queries(lambda q: index.search(q, k, threads=1).keys, queries)
        yield f"usearch ef={ef}", build, ms, found, size


def _size(save: Callable[[str], object]) -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "index")
        save(path)
        return os.path.getsize(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("features", type=Path)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--n", type=int, default=120_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--efc", type=int, default=200)
    parser.add_argument("--efs", default="64,128,256")
    parser.add_argument("--libs", default="hnswlib,faiss,usearch")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    data = np.load(args.features)
    whitening = fit_whitening(data["gallery_gem"], args.dim, 0.1)
    vectors = grow(whitening.apply(data["gallery_gem"]), args.n, rng)
    queries = whitening.apply(data["queries_gem"][: args.queries])
    k = 10
    truth = exact_top(vectors, queries, k)
    efs = [int(e) for e in args.efs.split(",")]
    print(
        f"{len(vectors)} vectors x {vectors.shape[1]} dims, {len(queries)} queries, k={k}, "
        f"M={args.m} efConstruction={args.efc}, build on {os.cpu_count()} threads, queries on 1"
    )
    print(f"{'library':22s} {'build s':>8s} {'query ms':>9s} {'recall@10':>10s} {'size MB':>8s}")
    benches = {"hnswlib": bench_hnswlib, "faiss": bench_faiss, "usearch": bench_usearch}
    for lib in args.libs.split(","):
        for name, build, ms, found, size in benches[lib](vectors, queries, efs, k, args.m, args.efc):
            print(f"{name:22s} {build:8.1f} {ms:9.3f} {recall(found, truth):10.4f} {size / 1e6:8.1f}", flush=True)


if __name__ == "__main__":
    main()

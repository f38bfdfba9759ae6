"""A million products on one machine: the ANN forms' build time, memory, size, latency and recall.

The real vectors of a built index (its shards: both views, whitened as the index stage does
it, the colour signature beside the fine view) are grown to --n by mixing pairs of real
vectors with noise (as bench/ann_compare.py does); 1000 more grown vectors, not indexed, are
the queries. Each form is built in a fresh process (build seconds on all cores, peak RSS above
the interpreter's own; the vectors read from a memory-mapped file, as shards would be) and
loaded in another (resident memory of the loaded index, query p50/p99 one query at a time on
one thread, recall@10 against exact search over the same float32 vectors).

    python bench/ann_million.py INDEX_DIR [--n 1000000] [--forms simple:1024:flat fine:256:sq8 ...]

A form is VIEW:WHITENING_DIM:STORAGE[:M[:EF_CONSTRUCTION]].
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from grown import grow

from firs.index import colour_fusion, shards
from firs.index import directory as layout
from firs.index.whitening import fit_whitening

EF_SEARCH = (64, 128, 256)
QUERIES = 1000
K = 10


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def real_vectors(index: Path, view: str, dim: int) -> np.ndarray:
    _, features = shards.read_column(index / layout.SHARDS, view)
    vectors = fit_whitening(features, dim).apply(features)
    if view == "fine":
        signatures = shards.read_column(index / layout.SHARDS, shards.colour_column(view))[1]
        vectors = colour_fusion.fuse(vectors, signatures, colour_fusion.DEFAULT_WEIGHT)
    return vectors


def exact_top(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    top = []
    for start in range(0, len(queries), 100):
        scores = queries[start : start + 100] @ vectors.T
        top.append(np.argpartition(-scores, K, axis=1)[:, :K])
    return np.concatenate(top)


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def build_one(vectors_path: str, out: str, storage: str, m: str, efc: str) -> None:
    from firs.index.ann import AnnIndex, HnswParams

    base = rss_mb()  # the interpreter and libraries, before any vector
    vectors = np.load(vectors_path, mmap_mode="r")
    start = time.perf_counter()
    params = HnswParams(m=int(m), ef_construction=int(efc), storage=storage)

    def blocks() -> Iterator[np.ndarray]:  # as the index stage reads shards, one in memory at a time
        for begin in range(0, len(vectors), 50_000):
            yield np.array(vectors[begin : begin + 50_000])
            vectors._mmap.madvise(mmap.MADV_DONTNEED)  # type: ignore[attr-defined]

    ann = AnnIndex.from_blocks(blocks, params)
    seconds = time.perf_counter() - start
    ann.save(Path(out))
    peak = peak_rss_mb()
    print(json.dumps({"build_s": seconds, "build_peak_mb": peak - base}))


def serve_one(index_path: str, queries_path: str, found_path: str, storage: str) -> None:
    import faiss

    from firs.index.ann import AnnIndex, HnswParams

    queries = np.load(queries_path)
    before = rss_mb()
    index = faiss.read_index(index_path)
    loaded = rss_mb() - before
    faiss.omp_set_num_threads(1)
    ann = AnnIndex(index, HnswParams(storage=storage))
    out: dict[str, object] = {"resident_mb": loaded}
    found = {}
    for ef in EF_SEARCH:
        ann.params = HnswParams(ef_search=ef, storage=storage)
        times, labels = [], []
        for query in queries:
            start = time.perf_counter()
            labels.append(ann.query(query, K)[0][0])
            times.append(time.perf_counter() - start)
        out[f"ef{ef}"] = [float(np.percentile(times, 50) * 1000), float(np.percentile(times, 99) * 1000)]
        found[f"ef{ef}"] = np.stack(labels)
    np.savez(found_path, **found)
    print(json.dumps(out))


def _run(*args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", type=Path, nargs="?")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--forms", nargs="+", default=["simple:256:sq8", "fine:256:sq8"])
    parser.add_argument("--work", type=Path, help="keep the grown vectors and indexes here")
    parser.add_argument("--build", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        return build_one(*args.build)
    if args.serve:
        return serve_one(*args.serve)
    work = args.work or Path(tempfile.mkdtemp(prefix="ann-million-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{args.n} vectors, {QUERIES} queries, k={K}; {os.cpu_count()} cores; work folder {work}")
    print(
        f"{'form':<22} {'build s':>8} {'peak MB':>8} {'file MB':>8} {'RAM MB':>7} {'B/vec':>6}  "
        + "  ".join(f"ef{ef} p50/p99 ms  R@10" for ef in EF_SEARCH)
    )
    for form in args.forms:
        view, dim, storage, *rest = form.split(":")
        m, efc = (rest + ["32", "200"][len(rest) :])[:2]
        vectors_path, queries_path = work / f"{view}-{dim}.npy", work / f"{view}-{dim}-queries.npy"
        truth_path = work / f"{view}-{dim}-truth.npy"
        if not truth_path.exists():
            grown = grow(real_vectors(args.index, view, int(dim)), args.n + QUERIES, np.random.default_rng(0))
            np.save(vectors_path, grown[: args.n])
            np.save(queries_path, grown[args.n :])
            np.save(truth_path, exact_top(grown[: args.n], grown[args.n :]))
            del grown
        index_path = work / f"{form.replace(':', '-')}.faiss"
        built = _run("--build", str(vectors_path), str(index_path), storage, m, efc)
        served = _run("--serve", str(index_path), str(queries_path), str(work / "found.npz"), storage)
        truth = np.load(truth_path)
        found = np.load(work / "found.npz")
        size = index_path.stat().st_size / 2**20
        cells = []
        for ef in EF_SEARCH:
            hits = np.mean([len(set(f) & set(t)) / K for f, t in zip(found[f"ef{ef}"], truth, strict=True)])
            p50, p99 = served[f"ef{ef}"]  # type: ignore[misc]
            cells.append(f"{p50:6.2f} /{p99:6.2f}   {hits:.3f}")
        per_vector = index_path.stat().st_size / args.n
        print(
            f"{form:<22} {built['build_s']:8.0f} {built['build_peak_mb']:8.0f} {size:8.0f} "
            f"{served['resident_mb']:7.0f} {per_vector:6.0f}  " + "  ".join(cells),
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Peak memory of the index stage as the catalogue grows: shards of N products in, an index out.

The raw features of a built index's shards (both views, colour signatures, labels) are grown
to N rows by mixing pairs of real rows with noise (as bench/ann_million.py grows vectors) and
written as the embed stage writes them, 1000 rows a partition; then, in a fresh process, the
index stage (labels, store, whitening from summed moments, ANN) runs on them and the process's
peak RSS is printed beside the size of the ANN it made (what any index of N products holds).

    python bench/build_memory.py INDEX_DIR [--n 10000 100000] [--compress none]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from grown import mixed, pairs

from firs.index import directory as layout
from firs.index import shards

PARTITION = 1000


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def grow_shards(index: Path, n: int, out: Path) -> None:
    columns = [c for c in shards.columns(index / layout.SHARDS) if c not in (shards.ID, shards.NOTE, shards.LABELS)]
    real = {c: shards.read_column(index / layout.SHARDS, c)[1] for c in columns}
    rows = list(shards.iter_rows(index / layout.SHARDS))
    rng = np.random.default_rng(0)
    for number, start in enumerate(range(0, n, PARTITION)):
        count = min(PARTITION, n - start)
        i, j, weight = pairs(count, len(rows), rng)
        vectors = {}
        for column, values in real.items():
            block = mixed(values, i, j, weight, rng)
            vectors[column] = np.clip(block, 0, None) if column.endswith("_colour") else block
        ids = [f"g{start + k}" for k in range(count)]
        shards.write_shard(
            out / shards.shard_name(number), ids, [rows[k][1] for k in i], [rows[k][2] for k in i], vectors
        )


def index_stage(shard_dir: str, staging: str, storage: str) -> None:
    from firs.catalog.product import Product
    from firs.catalog.store import ProductStore
    from firs.index.ann import HnswParams
    from firs.pipeline.index_stage import ViewSettings, index_products, index_views

    start = time.perf_counter()
    folder, source = Path(staging), Path(shard_dir)
    ids = [row[0] for row in shards.iter_rows(source)]
    store = ProductStore.create(folder / layout.STORE)
    store.add(Product(id=i, image=f"/x/{i}.jpg", title=i, categories=["tops"]) for i in ids)
    store.commit()
    index_products(store, source, {i: Product(id=i, image="", categories=["tops"]) for i in ids})
    settings = ViewSettings(hnsw=HnswParams(storage=storage))
    views = index_views(folder, source, settings, {"simple": "crop", "fine": "crop"})
    store.close()
    ann_mb = sum((folder / layout.view_dir(v) / layout.ANN).stat().st_size for v in views) / 2**20
    peak = peak_rss_mb()
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": peak, "ann_mb": ann_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", type=Path, nargs="?")
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--compress", default="flat", choices=["flat", "sq8"])
    parser.add_argument("--stage", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        return index_stage(*args.stage)
    print(f"{'products':>9} {'index stage s':>13} {'peak RSS MB':>11} {'ANN MB':>7} {'peak - ANN':>10}")
    for n in args.n:
        with tempfile.TemporaryDirectory() as tmp:
            shard_dir, staging = Path(tmp) / "shards", Path(tmp) / "index"
            staging.mkdir()
            grow_shards(args.index, n, shard_dir)
            command = [sys.executable, __file__, "--stage", str(shard_dir), str(staging), args.compress]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            rest = r["peak_mb"] - r["ann_mb"]
            print(f"{n:9d} {r['seconds']:13.0f} {r['peak_mb']:11.0f} {r['ann_mb']:7.0f} {rest:10.0f}")


if __name__ == "__main__":
    main()

"""Build throughput: images/s of the embed stage, product shots and worn photos apart, per engine.

Each run builds a fresh index of N images (a CSV catalogue over the dev set's files) with
`build_index`, in a fresh process, and prints the embed stage's wall time and images/s, and
the whole build's. Product shots: viton-dev's shop photos (garment on white); worn: its
model photos (a person wearing the garment).

    python bench/build_throughput.py [--images 300] [--runs local spark:local[2]:4 ...]

A run is ENGINE[:MASTER[:PARTITIONS]], e.g. `local`, `local::4`, `spark:local[2]:8`.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "viton-dev"
SETS = {"product shots": DATA / "products", "worn": DATA / "queries"}


def write_catalogue(images: list[Path], folder: Path) -> Path:
    path = folder / "catalog.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image", "title", "category"])
        for image in images:
            writer.writerow([image.stem, str(image), image.stem, "top"])
    return path


def agreement(a: Path, b: Path) -> str:
    """Do two builds hold the same products in the same order, with the same vectors?"""
    from firs.index import directory as layout
    from firs.index.shards import read_column

    worst = 0.0
    for column in ("simple", "fine"):
        ids_a, va = read_column(a / layout.SHARDS, column)
        ids_b, vb = read_column(b / layout.SHARDS, column)
        if ids_a != ids_b:
            return "different products"
        worst = max(worst, float(abs(va - vb).max()))
    return f"same ids, max |diff| {worst:.1e}"


def one_run(catalogue: str, out: str, engine: str, master: str, partitions: str, roots: str) -> None:
    """In a fresh process: build, print the report's numbers as JSON."""
    from firs.pipeline.build import BuildOptions, build_index
    from firs.runtime import tune_allocator

    tune_allocator()
    options = BuildOptions(
        progress=False,
        cache_dir=Path(out).parent / "cache",
        engine=engine,
        master=master or None,
        partitions=int(partitions) if partitions else None,
        image_roots=[Path(roots)],
    )
    start = time.perf_counter()
    report = build_index([Path(catalogue)], Path(out), options)
    total = time.perf_counter() - start
    print(json.dumps({"indexed": report.indexed, "failed": report.failed, "total": total, **report.seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--runs", nargs="+", default=["local", "spark:local[2]"])
    parser.add_argument("--one", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_run(*args.one)
        return
    print(f"{args.images} images a set; {sys.platform}, python {sys.version.split()[0]}")
    print(f"{'set':<14} {'run':<22} {'embed stage s':>13} {'img/s':>7} {'build s':>8} {'img/s':>7}  vs first run")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            images = sorted(SETS[name].glob("*.jpg"))[: args.images]
            folder = Path(tmp) / name.replace(" ", "-")
            folder.mkdir()
            catalogue = write_catalogue(images, folder)
            first: Path | None = None
            for run in args.runs:
                engine, master, partitions = [*run.split(":", 2), "", ""][:3]
                out = folder / f"index-{run.replace(':', '-').replace('[', '').replace(']', '')}"
                command = [sys.executable, __file__, "--one", str(catalogue), str(out), engine, master, partitions]
                done = subprocess.run([*command, str(SETS[name])], capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"{name:<14} {run:<22} failed: {done.stderr.strip().splitlines()[-1:]}")
                    continue
                numbers = json.loads(done.stdout.strip().splitlines()[-1])
                stage, total, n = numbers["embed stage"], numbers["total"], numbers["indexed"]
                first = first or out
                same = agreement(first, out)
                print(f"{name:<14} {run:<22} {stage:13.1f} {n / stage:7.1f} {total:8.1f} {n / total:7.1f}  {same}")


if __name__ == "__main__":
    main()

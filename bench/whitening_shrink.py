"""Recall against the whitening's eigenvalue shrinkage: an index reindexed with each value.

    python bench/whitening_shrink.py INDEX_DIR QUERIES.tsv [QUERIES.tsv ...] [--shrink 0.13 0.27 0.5 1]

Each value: a copy of INDEX_DIR, `firs reindex` with that shrinkage (pipeline/reindex.py), then
`firs eval --mode fine` on every queries file; prints eval's line per value and file.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from firs.index import directory as layout
from firs.pipeline.reindex import ReindexOptions, reindex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", type=Path)
    parser.add_argument("queries", type=Path, nargs="+")
    parser.add_argument("--shrink", type=float, nargs="+", default=[0.13, 0.27, 0.5, 1.0])
    parser.add_argument("--mode", default="fine")
    args = parser.parse_args()
    firs = Path(sys.executable).parent / "firs"
    with tempfile.TemporaryDirectory(prefix="firs-shrink-") as tmp:
        for shrink in args.shrink:
            folder = Path(tmp) / f"shrink-{shrink}"  # the index, and the versions reindex makes beside it
            copy = folder / "index"
            shutil.copytree(args.index.resolve(), copy)
            reindex(copy, ReindexOptions(whitening_shrink=shrink))
            dims = {v: e["whitening"]["dim"] for v, e in layout.read_manifest(copy)["views"].items()}
            for queries in args.queries:
                command = [str(firs), "eval", "--index", str(copy), "--queries", str(queries), "--mode", args.mode]
                done = subprocess.run([*command, "--quiet"], capture_output=True, text=True, check=True)
                print(f"shrink {shrink} {dims} {queries.parent.name}/{queries.name}: {done.stdout.strip()}", flush=True)
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()

"""Fine search's recall and latency at several working sizes of the localiser (query side).

    python bench/work_side.py --index INDEX --queries QUERIES.tsv [--sides 320 384 448 480 512 640]

The working size (`GarmentLocaliser.work_side`, by default `vision.localiser.WORK_SIDE`) is the
long side of the copy of a search's photo on which the person is located and the garment cut out
(a person under `MIN_PERSON_HEIGHT` px there is cut out of the photo at a larger size). Each size
runs every query through `firs eval`'s fine mode against the same index (its catalogue side stays
as it was built) and prints recall, mAP and the p50 of each stage. Photos already smaller than a
size are searched as they are, so only larger photos (street scenes, phone photos) tell the sizes
apart.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from firs.eval.runner import evaluate
from firs.runtime import limit_blas_threads, tune_allocator
from firs.search.engine import SearchEngine
from firs.vision import localiser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--sides", type=int, nargs="+", default=[320, 384, 448, 480, 512, 640])
    args = parser.parse_args()
    tune_allocator()
    limit_blas_threads()
    engine = SearchEngine(args.index)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; built-in size {localiser.WORK_SIDE}")
    print("side  R@1   R@5   R@10  R@20  mAP   | p50 ms: decode detect segment embed total")
    for side in args.sides:
        engine.localiser.work_side = side
        fine = evaluate(engine, args.queries, ["fine"], progress=False)["fine"]
        recall = "  ".join(f"{fine[f'recall@{k}']:.3f}" for k in (1, 5, 10, 20))
        p50 = fine["timings_ms"]
        stages = " ".join(f"{p50[s]['p50']:6.1f}" for s in ("decode", "detect", "segment", "embed", "total"))
        print(f"{side:4d}  {recall}  {fine['mAP']:.3f} | {stages}", flush=True)


if __name__ == "__main__":
    main()

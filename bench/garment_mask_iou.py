"""Garment mask quality: IoU of the upper-body garment mask against viton-dev/parse.

Parse labels 5 (upper-clothes), 6 (dress) and 7 (coat) are the truth. Variants: the
person mask inside the upper-body region; plus face cut and colour classes; plus GrabCut.
    python bench/garment_mask_iou.py [--limit N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from firs.vision import garment_mask as mask_module
from firs.vision.decode import load_image
from firs.vision.garment_mask import garment_mask
from firs.vision.pose import PoseEstimator
from firs.vision.regions import body_regions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "viton-dev"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--grabcut-side", type=int, default=mask_module.GRABCUT_SIDE)
    parser.add_argument("--grabcut-iterations", type=int, default=mask_module.GRABCUT_ITERATIONS)
    args = parser.parse_args()
    mask_module.GRABCUT_SIDE, mask_module.GRABCUT_ITERATIONS = args.grabcut_side, args.grabcut_iterations
    parses = sorted((args.data / "parse").glob("*.png"))
    if args.limit:
        parses = parses[: args.limit]
    estimator = PoseEstimator()
    scores: dict[str, list[float]] = {"person in region": [], "+ face cut, colour classes": [], "+ GrabCut": []}
    times: dict[str, list[float]] = {"pose": [], "colour": [], "grabcut": []}
    no_person = 0
    for parse_path in tqdm(parses, desc="masks"):
        truth = np.isin(np.asarray(Image.open(parse_path)), (5, 6, 7))
        rgb = np.asarray(load_image(args.data / "queries" / f"{parse_path.stem}.jpg"))
        start = time.perf_counter()
        pose = estimator.estimate(rgb)
        times["pose"].append(time.perf_counter() - start)
        regions = [] if pose is None else [r for r in body_regions(pose, rgb.shape[:2]) if r.name == "upper"]
        if not regions:
            no_person += 1
            for name in scores:
                scores[name].append(0.0)
            continue
        region = regions[0]
        scores["person in region"].append(iou(region.mask & (pose.mask > 0.5), truth))
        start = time.perf_counter()
        scores["+ face cut, colour classes"].append(iou(garment_mask(rgb, pose, region), truth))
        times["colour"].append(time.perf_counter() - start)
        start = time.perf_counter()
        scores["+ GrabCut"].append(iou(garment_mask(rgb, pose, region, grabcut=True), truth))
        times["grabcut"].append(time.perf_counter() - start)
    print(f"{len(parses)} parse maps, no upper-body region found in {no_person}")
    for name, values in scores.items():
        print(f"  mean IoU {np.mean(values):.3f}  median {np.median(values):.3f}  {name}")
    for name, values in times.items():
        print(f"  {name}: p50 {1000 * np.median(values):.1f} ms")


if __name__ == "__main__":
    main()

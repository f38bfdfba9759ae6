"""BlazePose on OpenVINO (what FIRS runs) against MediaPipe's own graph, photo by photo.

    python bench/pose_runtime.py --queries QUERIES.tsv [--limit 200] [--side 384]

Each photo is shrunk to the localiser's working size, then both estimate its pose (interleaved,
so the machine's noise falls on both). Prints: how often they agree that a person is there; the
median landmark gap as a fraction of the torso length (shoulder to hip); the largest
visibility gap; the person masks' IoU (at 0.5); ms per photo for each and the ratio.
MediaPipe is imported here only: FIRS itself reads the wheel's two networks.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from firs.eval.queries import read_queries
from firs.vision.localiser import WORK_SIDE
from firs.vision.pose import LEFT_HIP, LEFT_SHOULDER, Pose, PoseEstimator


def mediapipe_estimator():  # the reference: the graph FIRS ran before
    import mediapipe as mp

    graph = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True)

    def estimate(rgb: np.ndarray) -> Pose | None:
        found = graph.process(rgb)
        if found.pose_landmarks is None:
            return None
        height, width = rgb.shape[:2]
        marks = found.pose_landmarks.landmark
        points = np.array([[m.x * width, m.y * height] for m in marks], np.float32)
        visibility = np.array([m.visibility for m in marks], np.float32)
        return Pose(points, visibility, np.asarray(found.segmentation_mask, np.float32))

    return estimate


def working_size(path: Path, side: int = WORK_SIDE) -> np.ndarray:
    """A photo shrunk to the localiser's working size, as an RGB array."""
    image = Image.open(path).convert("RGB")
    scale = min(1.0, side / max(image.size))
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    return np.ascontiguousarray(np.asarray(image))


def compare(estimators: dict[str, Callable[[np.ndarray], Pose | None]], photos: list[Path], side: int) -> None:
    """Both estimators on each photo in turn (so the machine's noise falls on both); prints how
    often they agree a person is there, the landmark gap over the torso length, the largest
    visibility gap, the person masks' IoU and ms per photo."""
    (first, second), agree, gaps, visibility_gaps, ious = estimators, 0, [], [], []
    times: dict[str, list[float]] = {name: [] for name in estimators}
    for number, path in enumerate(photos):
        rgb = working_size(path, side)
        answers = {}
        for name, estimate in estimators.items():
            start = time.perf_counter()
            answers[name] = estimate(rgb)
            if number >= 3:  # first calls pay set-up costs
                times[name].append((time.perf_counter() - start) * 1000)
        a, b = answers[first], answers[second]
        agree += (a is None) == (b is None)
        if a is not None and b is not None:
            torso = max(float(np.linalg.norm(a.points[LEFT_SHOULDER] - a.points[LEFT_HIP])), 1.0)
            gaps.append(float(np.median(np.linalg.norm(a.points - b.points, axis=1))) / torso)
            visibility_gaps.append(float(np.abs(a.visibility - b.visibility).max()))
            ma, mb = a.mask > 0.5, b.mask > 0.5
            ious.append(float((ma & mb).sum() / max(1, (ma | mb).sum())))

    print(f"machine: {platform.processor() or platform.machine()}, photos: {len(photos)} at {side} px")
    print(f"person found by both or neither: {agree}/{len(photos)}; by both: {len(gaps)}")
    if gaps:
        p90 = np.percentile(gaps, 90)
        print(f"landmark gap / torso: median {np.median(gaps):.4f}, p90 {p90:.4f}, max {max(gaps):.4f}")
        print(f"largest visibility gap: median {np.median(visibility_gaps):.4f}, max {max(visibility_gaps):.4f}")
        print(f"person mask IoU: median {np.median(ious):.4f}, p10 {np.percentile(ious, 10):.4f}, min {min(ious):.4f}")
    a_ms, b_ms = np.median(times[first]), np.median(times[second])
    print(f"ms per photo, p50: {first} {a_ms:.2f}, {second} {b_ms:.2f} ({b_ms / a_ms:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=Path, required=True, help="a firs eval queries file (photo<TAB>product)")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--side", type=int, default=WORK_SIDE, help="long side the photos are shrunk to")
    args = parser.parse_args()
    photos = [query.path for query in read_queries(args.queries)][: args.limit]
    compare({"mediapipe": mediapipe_estimator(), "openvino": PoseEstimator().estimate}, photos, args.side)


if __name__ == "__main__":
    main()

"""Cheaper BlazePose variants against the networks FIRS runs (issue 14's pose stage), photo by photo.

    python bench/pose_variants.py --queries QUERIES.tsv [--limit 200] \\
        [--landmarks OTHER.tflite] [--int8 landmarks|both --calibration QUERIES.tsv]

--landmarks: another landmark network in place of `pose_landmark_full` (same detector), e.g.
the lite one that the npm package @mediapipe/pose ships (`npm pack @mediapipe/pose`; the
mediapipe wheel carries only the full one). --int8: the landmark network (or both networks)
quantised by NNCF's post-training quantisation, calibrated on what the networks see for the
first 300 photos of --calibration (those photos are then left out of the comparison).

Each photo is shrunk to the localiser's working size and both estimators run on it in turn.
Prints: how often they agree that a person is there; the median landmark gap as a fraction of
the torso length; the person masks' IoU (at 0.5); ms per photo for each.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

from firs.eval.queries import read_queries
from firs.vision.compiled_net import CompiledPiece
from firs.vision.localiser import WORK_SIDE
from firs.vision.pose import LEFT_HIP, LEFT_SHOULDER, PoseEstimator, model_files

CALIBRATION = 300


def working_size(path: Path) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    scale = min(1.0, WORK_SIDE / max(image.size))
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    return np.ascontiguousarray(np.asarray(image))


class _Recorder:
    """Passes a network's inputs on, keeping a copy: the calibration set."""

    def __init__(self, piece: CompiledPiece) -> None:
        self.piece, self.inputs = piece, []

    def __call__(self, x: np.ndarray):
        self.inputs.append(x.copy())
        return self.piece(x)


def quantised(which: str, photos: list[Path]) -> PoseEstimator:
    import nncf
    import openvino

    recording = PoseEstimator()
    detector, landmarks = _Recorder(recording._detector), _Recorder(recording._landmarks)
    recording._detector, recording._landmarks = detector, landmarks
    for path in photos:
        recording.estimate(working_size(path))
    core, (detector_file, landmark_file) = openvino.Core(), model_files()
    estimator = PoseEstimator()
    targets = [("_landmarks", landmark_file, landmarks.inputs)]
    if which == "both":
        targets.append(("_detector", detector_file, detector.inputs))
    for attribute, file, inputs in targets:
        model = nncf.quantize(core.read_model(str(file)), nncf.Dataset(inputs), subset_size=len(inputs))
        setattr(estimator, attribute, CompiledPiece(model, None, 1))
    return estimator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=Path, required=True, help="a firs eval queries file (photo<TAB>product)")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--landmarks", type=Path, help="another landmark .tflite in place of the full one")
    parser.add_argument("--int8", choices=("landmarks", "both"), help="quantise these networks (NNCF)")
    parser.add_argument("--calibration", type=Path, help="queries whose first 300 photos calibrate --int8")
    args = parser.parse_args()
    if (args.landmarks is None) == (args.int8 is None):
        parser.error("give one of --landmarks or --int8")
    photos = [query.path for query in read_queries(args.queries)]
    if args.int8:
        calibration = [q.path for q in read_queries(args.calibration or args.queries)][:CALIBRATION]
        photos = [p for p in photos if p not in set(calibration)]
        variant = quantised(args.int8, calibration)
    else:
        import openvino

        variant = PoseEstimator()
        variant._landmarks = CompiledPiece(openvino.Core().read_model(str(args.landmarks)), None, 1)
    photos = photos[: args.limit]
    shipped = PoseEstimator()
    agree, gaps, ious = 0, [], []
    times: dict[str, list[float]] = {"shipped": [], "variant": []}
    for number, path in enumerate(photos):
        rgb = working_size(path)
        answers = {}
        for name, estimator in (("shipped", shipped), ("variant", variant)):
            start = time.perf_counter()
            answers[name] = estimator.estimate(rgb)
            if number >= 3:  # first calls pay set-up costs
                times[name].append((time.perf_counter() - start) * 1000)
        a, b = answers["shipped"], answers["variant"]
        agree += (a is None) == (b is None)
        if a is not None and b is not None:
            torso = max(float(np.linalg.norm(a.points[LEFT_SHOULDER] - a.points[LEFT_HIP])), 1.0)
            gaps.append(float(np.median(np.linalg.norm(a.points - b.points, axis=1))) / torso)
            ma, mb = a.mask > 0.5, b.mask > 0.5
            ious.append(float((ma & mb).sum() / max(1, (ma | mb).sum())))

    print(f"machine: {platform.processor() or platform.machine()}, photos: {len(photos)} at {WORK_SIDE} px")
    print(f"person found by both or neither: {agree}/{len(photos)}; by both: {len(gaps)}")
    if gaps:
        print(f"landmark gap / torso: median {np.median(gaps):.4f}, p90 {np.percentile(gaps, 90):.4f}")
        print(f"person mask IoU: median {np.median(ious):.4f}, p10 {np.percentile(ious, 10):.4f}")
    ms = {name: float(np.median(values)) for name, values in times.items()}
    ratio = ms["variant"] / ms["shipped"]
    print(f"ms per photo, p50: shipped {ms['shipped']:.2f}, variant {ms['variant']:.2f} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()

"""Cheaper BlazePose variants against the networks FIRS runs (issue 14's pose stage), photo by photo.

    python bench/pose_variants.py --queries QUERIES.tsv [--limit 200] \\
        [--landmarks OTHER.tflite] [--int8 landmarks|both --calibration QUERIES.tsv]

--landmarks: another landmark network in place of `pose_landmark_full` (same detector), e.g.
the lite one that the npm package @mediapipe/pose ships (`npm pack @mediapipe/pose`; the
mediapipe wheel carries only the full one). --int8: the landmark network (or both networks)
quantised by NNCF's post-training quantisation, calibrated on what the networks see for the
first 300 photos of --calibration (those photos are then left out of the comparison).

Each photo is shrunk to the localiser's working size and both estimators run on it in turn;
the same figures as bench/pose_runtime.py are printed (agreement, landmark gap over the torso
length, visibility gap, mask IoU, ms per photo).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from pose_runtime import compare, working_size

from firs.eval.queries import read_queries
from firs.vision.compiled_net import CompiledPiece
from firs.vision.localiser import WORK_SIDE
from firs.vision.pose import PoseEstimator, model_files

CALIBRATION = 300


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
    compare({"shipped": PoseEstimator().estimate, "variant": variant.estimate}, photos, WORK_SIDE)


if __name__ == "__main__":
    main()

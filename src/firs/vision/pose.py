"""Person pose and mask: BlazePose "full" (33 landmarks and a person mask), run on OpenVINO.

The two networks are the ones the mediapipe 0.10.21 wheel ships (`pose_detection.tflite`,
`pose_landmark_full.tflite`; nothing is downloaded). MediaPipe's own graph took ~32 ms a
photo on the 2-core dev machine; the same networks on OpenVINO's CPU plugin with the steps
between them written here take ~17 ms and give MediaPipe's answer (median landmark gap
0.0006 of the torso length, mask IoU 1.000 on street photos; bench/pose_runtime.py):

1. the person detector on the photo letterboxed to 224 px: one box and four keypoints per
   anchor; the best box and those overlapping it by IoU > 0.3 averaged by score;
2. a square crop around the hips, sized and turned by the hips-to-head keypoints, 256 px;
3. the landmark network on it: 39 landmarks (the first 33 are the pose), visibility logits,
   a presence score, a 256 px person mask and 64 px heatmaps that refine each landmark;
4. landmarks and mask mapped back to the photo through the crop's affine transform.

Each calling thread has its own inference requests, so workers estimate in parallel.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

# Landmark numbers (BlazePose topology).
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR, MOUTH_LEFT, MOUTH_RIGHT = 0, 2, 5, 7, 8, 9, 10
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 11, 12, 13, 14, 15, 16
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 23, 24, 25, 26, 27, 28
LEFT_HEEL, RIGHT_HEEL, LEFT_FOOT, RIGHT_FOOT = 29, 30, 31, 32
FACE = tuple(range(0, 11))
POSE_LANDMARKS = 33

DETECTOR_SIDE, LANDMARK_SIDE, HEATMAP_SIDE = 224, 256, 64
MIN_PERSON_SCORE = 0.5  # detector score, and the landmark network's presence score
OVERLAP = 0.3  # detections overlapping the best by more IoU than this are averaged into it
CROP_SCALE = 1.25  # the crop around the person: 1.25 x the hips-to-head circle's diameter
REFINE_KERNEL, MIN_REFINE_CONFIDENCE = 7, 0.5


@dataclass
class Pose:
    """Landmarks in pixels: points (33, 2) as x, y; visibility (33,) in 0..1; mask (h, w) 0..1."""

    points: np.ndarray
    visibility: np.ndarray
    mask: np.ndarray

    def visible(self, *ids: int, threshold: float = 0.5) -> bool:
        return bool(np.all(self.visibility[list(ids)] >= threshold))

    def scaled(self, width: int, height: int) -> Pose:
        """The same pose on the same picture at another size (width x height)."""
        factor = np.array([width / self.mask.shape[1], height / self.mask.shape[0]], np.float32)
        mask = cv2.resize(self.mask, (width, height), interpolation=cv2.INTER_LINEAR)
        return Pose(self.points * factor, self.visibility, mask)


def model_files() -> tuple[Path, Path]:
    """The detector and landmark networks inside the installed mediapipe wheel (found without
    importing mediapipe, whose import costs a second and loads its own runtime)."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the mediapipe package, which holds the BlazePose models, is not installed")
    modules = Path(next(iter(spec.submodule_search_locations))) / "modules"
    return modules / "pose_detection" / "pose_detection.tflite", modules / "pose_landmark" / "pose_landmark_full.tflite"


@cache
def _anchors() -> np.ndarray:
    """The detector's 2254 anchor centres (x, y in 0..1): 2 per cell on the 28 and 14 px grids
    (strides 8 and 16), 6 per cell on the 7 px grid (three layers of stride 32)."""
    rows = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        cells = DETECTOR_SIDE // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        rows.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(rows).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large negative logits


def _person_keypoints(boxes: np.ndarray, logits: np.ndarray) -> np.ndarray | None:
    """The hips centre and the head-side point (x, y in the 224 px letterbox) of the most
    likely person, averaged over the detections that overlap it (MediaPipe's weighted NMS)."""
    scores = _sigmoid(np.clip(logits, -100.0, 100.0))
    order = np.argsort(-scores)
    order = order[scores[order] >= MIN_PERSON_SCORE]
    if not len(order):
        return None
    anchors = _anchors()[order] * DETECTOR_SIDE
    raw = boxes[order]
    centre, size = raw[:, :2] + anchors, raw[:, 2:4]
    low, high = centre - size / 2, centre + size / 2
    overlap = np.clip(np.minimum(high, high[0]) - np.maximum(low, low[0]), 0, None).prod(axis=1)
    iou = overlap / np.maximum(size.prod(axis=1) + size[0].prod() - overlap, 1e-9)
    group = iou > OVERLAP
    weights = scores[order][group]
    keypoints = raw[group, 4:8].reshape(-1, 2, 2) + anchors[group, None, :]
    return (keypoints * weights[:, None, None]).sum(axis=0) / weights.sum()


def _refine(landmarks: np.ndarray, heatmaps: np.ndarray) -> None:
    """Move each landmark to the confidence-weighted centre of its heatmap around it (7x7 cells),
    where the heatmap is confident there; in place, in landmark-crop pixels."""
    half, scale = REFINE_KERNEL // 2, LANDMARK_SIDE / HEATMAP_SIDE
    cells = (landmarks[:POSE_LANDMARKS, :2] / scale).astype(int)
    numbers = np.flatnonzero(((cells >= 0) & (cells < HEATMAP_SIDE)).all(axis=1))
    if not len(numbers):
        return
    offsets = np.arange(-half, half + 1)
    rows, cols = cells[numbers, 1][:, None] + offsets, cells[numbers, 0][:, None] + offsets  # (n, 7) each
    on_map = ((rows >= 0) & (rows < HEATMAP_SIDE))[:, :, None] & ((cols >= 0) & (cols < HEATMAP_SIDE))[:, None, :]
    clipped_rows, clipped_cols = np.clip(rows, 0, HEATMAP_SIDE - 1), np.clip(cols, 0, HEATMAP_SIDE - 1)
    logits = heatmaps[clipped_rows[:, :, None], clipped_cols[:, None, :], numbers[:, None, None]]
    window = _sigmoid(logits) * on_map  # cells off the heatmap weigh nothing
    total = window.sum(axis=(1, 2))
    refined = (window.max(axis=(1, 2)) >= MIN_REFINE_CONFIDENCE) & (total > 0)
    if not refined.any():
        return
    window, total, rows, cols = window[refined], total[refined], rows[refined], cols[refined]
    landmarks[numbers[refined], 0] = (window * cols[:, None, :]).sum(axis=(1, 2)) / total * scale
    landmarks[numbers[refined], 1] = (window * rows[:, :, None]).sum(axis=(1, 2)) / total * scale


def _crop_transform(hips: np.ndarray, head: np.ndarray) -> np.ndarray:
    """The 2x3 affine map from landmark-crop pixels to photo pixels: a square centred on the
    hips, turned so that hips-to-head points up, 1.25 x the circle through the head across."""
    dx, dy = head - hips
    side = 2 * math.hypot(dx, dy) * CROP_SCALE
    angle = math.pi / 2 - math.atan2(-dy, dx)
    cos, sin = math.cos(angle) * side / LANDMARK_SIDE, math.sin(angle) * side / LANDMARK_SIDE
    half = LANDMARK_SIDE / 2
    return np.array([[cos, -sin, hips[0] - (cos - sin) * half], [sin, cos, hips[1] - (sin + cos) * half]], np.float32)


class PoseEstimator:
    """BlazePose's two networks compiled once; `estimate` may be called from any thread
    (`threads`, `streams`: see compiled_net.CompiledPiece)."""

    def __init__(self, threads: int | None = None, streams: int = 1) -> None:
        import openvino

        from .compiled_net import CompiledPiece

        core = openvino.Core()
        detector, landmarks = model_files()
        self._detector = CompiledPiece(core.read_model(str(detector)), threads, streams)
        self._landmarks = CompiledPiece(core.read_model(str(landmarks)), threads, streams)

    def estimate(self, rgb: np.ndarray) -> Pose | None:
        """The most prominent person's pose in an RGB uint8 array, or None when there is none."""
        height, width = rgb.shape[:2]
        scale = DETECTOR_SIDE / max(height, width)
        pad = np.array([DETECTOR_SIDE - width * scale, DETECTOR_SIDE - height * scale], np.float32) / 2
        letterbox = np.array([[scale, 0, pad[0]], [0, scale, pad[1]]], np.float32)
        small = cv2.warpAffine(rgb, letterbox, (DETECTOR_SIDE, DETECTOR_SIDE), flags=cv2.INTER_LINEAR)
        boxes, logits = self._detector(small[None].astype(np.float32) * (2 / 255) - 1)
        keypoints = _person_keypoints(boxes[0], logits[0, :, 0])
        if keypoints is None:
            return None
        hips, head = (keypoints - pad) / scale
        if np.hypot(*(head - hips)) < 1:  # a body under a pixel tall: no crop to look at
            return None
        transform = _crop_transform(hips, head)
        crop = cv2.warpAffine(
            rgb, transform, (LANDMARK_SIDE, LANDMARK_SIDE),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        raw, presence, mask, heatmaps, _world = self._landmarks(crop[None].astype(np.float32) * (1 / 255))
        if float(presence.ravel()[0]) < MIN_PERSON_SCORE:
            return None
        landmarks = raw.reshape(-1, 5)[:POSE_LANDMARKS].copy()
        _refine(landmarks, heatmaps[0])
        points = landmarks[:, :2] @ transform[:, :2].T + transform[:, 2]
        person = cv2.warpAffine(_sigmoid(mask[0, :, :, 0]), transform, (width, height), flags=cv2.INTER_LINEAR)
        return Pose(points=points.astype(np.float32), visibility=_sigmoid(landmarks[:, 3]), mask=person)

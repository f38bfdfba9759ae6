"""Person pose and mask: mediapipe 0.10.21's BlazePose "full" (33 landmarks) with its
segmentation output, both bundled in the mediapipe wheel (no download)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

# Landmark numbers (BlazePose topology).
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR, MOUTH_LEFT, MOUTH_RIGHT = 0, 2, 5, 7, 8, 9, 10
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 11, 12, 13, 14, 15, 16
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 23, 24, 25, 26, 27, 28
LEFT_HEEL, RIGHT_HEEL, LEFT_FOOT, RIGHT_FOOT = 29, 30, 31, 32
FACE = tuple(range(0, 11))
MODEL_COMPLEXITY = 1  # BlazePose "full": the only pose model in the wheel (lite and heavy download)


@dataclass
class Pose:
    """Landmarks in pixels: points (33, 2) as x, y; visibility (33,) in 0..1; mask (h, w) 0..1."""

    points: np.ndarray
    visibility: np.ndarray
    mask: np.ndarray

    def visible(self, *ids: int, threshold: float = 0.5) -> bool:
        return bool(np.all(self.visibility[list(ids)] >= threshold))


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the C++ log lines mediapipe prints while its graph starts (not errors)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class PoseEstimator:
    """Loads BlazePose once; `estimate` is serialised (a mediapipe graph is not re-entrant)."""

    def __init__(self) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with _quiet_stderr():
            import mediapipe as mp

            self._pose = mp.solutions.pose.Pose(
                static_image_mode=True,
                model_complexity=MODEL_COMPLEXITY,
                enable_segmentation=True,
                min_detection_confidence=0.5,
            )
            # The first run logs its delegate and projection warnings; take them here.
            self._pose.process(np.full((64, 64, 3), 255, np.uint8))
        self._lock = threading.Lock()
        self._quiet = True  # until the landmark stage has run once and said its piece

    def estimate(self, rgb: np.ndarray) -> Pose | None:
        """The most prominent person's pose in an RGB uint8 array, or None when there is none."""
        height, width = rgb.shape[:2]
        with self._lock:
            # Silencing swaps the process's stderr: from another thread it would swallow what the
            # main thread prints meanwhile (a progress bar, "interrupted"); there a log line may pass.
            if self._quiet and threading.current_thread() is threading.main_thread():
                with _quiet_stderr():
                    result = self._pose.process(np.ascontiguousarray(rgb))
                self._quiet = result.pose_landmarks is None
            else:
                result = self._pose.process(np.ascontiguousarray(rgb))
        if result.pose_landmarks is None:
            return None
        marks = result.pose_landmarks.landmark
        points = np.array([[m.x * width, m.y * height] for m in marks], dtype=np.float32)
        visibility = np.array([m.visibility for m in marks], dtype=np.float32)
        mask = result.segmentation_mask
        if mask is None:
            mask = np.ones((height, width), np.float32)
        return Pose(points=points, visibility=visibility, mask=np.asarray(mask, dtype=np.float32))

"""Garment regions from a pose: where tops, bottoms, full-length garments and shoes are.

No garment detector can be installed offline, so regions are drawn from the body:
shoulders, hips, elbows, knees, ankles. Each region has a box, a polygon mask of the
body parts its garments cover, a label and a confidence (the landmarks' visibility).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .crops import mask_box
from .pose import (
    LEFT_ANKLE,
    LEFT_ELBOW,
    LEFT_FOOT,
    LEFT_HEEL,
    LEFT_HIP,
    LEFT_KNEE,
    LEFT_SHOULDER,
    LEFT_WRIST,
    RIGHT_ANKLE,
    RIGHT_ELBOW,
    RIGHT_FOOT,
    RIGHT_HEEL,
    RIGHT_HIP,
    RIGHT_KNEE,
    RIGHT_SHOULDER,
    RIGHT_WRIST,
    Pose,
)

REGIONS = ("upper", "lower", "full", "feet")
# What a shopper calls what was found in each region (the answers' `name`).
REGION_WORDS = {
    "upper": "top",
    "lower": "trousers or skirt",
    "full": "dress or outfit",
    "feet": "shoes",
    "object": "item",
    "image": "whole photo",
}
VISIBLE = 0.5


@dataclass
class Region:
    name: str  # upper | lower | full | feet | object | image
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels
    mask: np.ndarray  # bool (h, w): where the region's garments may be
    score: float

    def as_dict(self) -> dict[str, object]:
        words = REGION_WORDS[self.name]
        return {"label": self.name, "name": words, "box": list(self.box), "score": round(self.score, 3)}


def _limb(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, width: float) -> None:
    cv2.line(canvas, tuple(int(v) for v in a), tuple(int(v) for v in b), 1, max(1, int(width)), cv2.LINE_8)


def _grow(quad: np.ndarray, factor: float) -> np.ndarray:
    centre = quad.mean(axis=0)
    return centre + (quad - centre) * factor


def body_regions(pose: Pose, shape: tuple[int, int]) -> list[Region]:
    """Regions whose defining landmarks are visible, most confident first within each kind."""
    height, width = shape
    p, vis = pose.points, pose.visibility
    regions: list[Region] = []
    if not pose.visible(LEFT_SHOULDER, RIGHT_SHOULDER, threshold=VISIBLE):
        return regions
    shoulder_width = float(np.linalg.norm(p[LEFT_SHOULDER] - p[RIGHT_SHOULDER]))
    hips_seen = pose.visible(LEFT_HIP, RIGHT_HIP, threshold=VISIBLE)
    if hips_seen:
        hips = np.array([p[LEFT_HIP], p[RIGHT_HIP]])
    else:  # a partial view: the torso runs out of the frame
        drop = np.array([0.0, max(shoulder_width * 1.6, height - p[LEFT_SHOULDER][1])])
        hips = np.array([p[LEFT_SHOULDER] + drop, p[RIGHT_SHOULDER] + drop])

    upper = np.zeros((height, width), np.uint8)
    torso = np.array([p[LEFT_SHOULDER], p[RIGHT_SHOULDER], hips[1], hips[0]])
    torso = _grow(torso, 1.25)
    torso[:2, 1] -= shoulder_width * 0.12  # the collar sits above the shoulder joints
    cv2.fillPoly(upper, [torso.astype(np.int32)], 1)
    for shoulder, elbow, wrist in ((LEFT_SHOULDER, LEFT_ELBOW, LEFT_WRIST), (RIGHT_SHOULDER, RIGHT_ELBOW, RIGHT_WRIST)):
        if vis[elbow] >= VISIBLE:
            _limb(upper, p[shoulder], p[elbow], shoulder_width * 0.45)
            if vis[wrist] >= VISIBLE:
                _limb(upper, p[elbow], p[wrist], shoulder_width * 0.35)
    upper_score = float(vis[[LEFT_SHOULDER, RIGHT_SHOULDER]].mean() * (1.0 if hips_seen else 0.8))
    _add(regions, "upper", upper, upper_score)

    legs_seen = hips_seen and pose.visible(LEFT_KNEE, RIGHT_KNEE, threshold=VISIBLE)
    if legs_seen:
        lower = np.zeros((height, width), np.uint8)
        hip_width = float(np.linalg.norm(p[LEFT_HIP] - p[RIGHT_HIP]))
        waist = _grow(np.array([p[LEFT_HIP], p[RIGHT_HIP], p[RIGHT_KNEE], p[LEFT_KNEE]]), 1.2)
        waist[:2, 1] -= hip_width * 0.35
        cv2.fillPoly(lower, [waist.astype(np.int32)], 1)
        for hip, knee, ankle in ((LEFT_HIP, LEFT_KNEE, LEFT_ANKLE), (RIGHT_HIP, RIGHT_KNEE, RIGHT_ANKLE)):
            _limb(lower, p[hip], p[knee], hip_width * 0.75)
            if vis[ankle] >= VISIBLE:
                _limb(lower, p[knee], p[ankle], hip_width * 0.55)
        lower_score = float(vis[[LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE]].mean())
        _add(regions, "lower", lower, lower_score)
        _add(regions, "full", np.maximum(upper, lower), min(upper_score, lower_score))

    feet_ids = (LEFT_ANKLE, RIGHT_ANKLE, LEFT_HEEL, RIGHT_HEEL, LEFT_FOOT, RIGHT_FOOT)
    if hips_seen and pose.visible(LEFT_ANKLE, RIGHT_ANKLE, threshold=VISIBLE):
        feet = np.zeros((height, width), np.uint8)
        radius = max(4, int(shoulder_width * 0.3))
        for i in feet_ids:
            cv2.circle(feet, tuple(int(v) for v in p[i]), radius, 1, -1)
        _add(regions, "feet", feet, float(vis[list(feet_ids)].mean()))
    return regions


def _add(regions: list[Region], name: str, mask: np.ndarray, score: float) -> None:
    box = mask_box(mask)
    if box is not None:
        regions.append(Region(name=name, box=box, mask=mask.astype(bool), score=score))

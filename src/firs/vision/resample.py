"""Scaling pictures: one way for every step that shrinks a photo (the embedder's input, the
localiser's working size).

"area-linear": a box average by the whole reduction factor on each axis (OpenCV's exact fast
path), then bilinear for the rest. Within ~1 grey level of Pillow's antialiased bilinear at a
tenth of its time (0.2 against 1.9 ms for a 640x480 photo; bench/prepare_speed.py).
"pil-bilinear": Pillow's, what every index built before "area-linear" was recorded used; such
an index keeps it, so its queries are scaled as its catalogue was.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ..errors import FirsError

RESAMPLE = "area-linear"
PILLOW = "pil-bilinear"  # an index whose manifest names no resampling was built with this
RESAMPLERS = (RESAMPLE, PILLOW)


def check_resample(resample: str) -> None:
    if resample not in RESAMPLERS:
        raise FirsError(f"unknown resampling {resample!r} ({', '.join(RESAMPLERS)})")


def fitted(size: tuple[int, int], side: int) -> tuple[int, int]:
    """Width and height scaled so that the long side is `side` (each at least 1 pixel)."""
    scale = side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def resized(image: Image.Image, width: int, height: int, resample: str = RESAMPLE) -> np.ndarray:
    """An RGB picture's HWC uint8 pixels at width x height."""
    if resample == PILLOW:
        return np.asarray(image.resize((width, height), Image.BILINEAR, reducing_gap=2.0))
    check_resample(resample)
    pixels = np.asarray(image)
    across, down = max(1, image.width // width), max(1, image.height // height)
    if across > 1 or down > 1:
        whole = pixels[: image.height - image.height % down, : image.width - image.width % across]
        pixels = cv2.resize(whole, (whole.shape[1] // across, whole.shape[0] // down), interpolation=cv2.INTER_AREA)
    if pixels.shape[:2] == (height, width):
        return pixels
    return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LINEAR)

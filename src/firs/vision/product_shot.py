"""Telling a product shot (an item alone on a flat backdrop) from a worn picture before the pose model.

On a product shot BlazePose costs ~14 ms just to find nobody (40 ms with the turned retries
a query photo gets), and it sometimes sees a body that is not there: on 800 dev catalogue
pictures it found one in 34 of the 393 this test calls product shots — every one a shirt,
shoe, sock or pair of sunglasses on white, which the fine view then cut as a body region
(docs/architecture.md, "Build throughput"). A worn picture shows skin (face, arms, legs): the
least among 100 dev model photos was 4 % of the pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from .crops import border_pixels
from .resample import fitted

FLAT_SPREAD = 3.0  # border pixels' spread (std per channel, 0-255) under which the backdrop is one flat colour
SKIN_SHARE = 0.01  # under this share of skin-coloured pixels nobody is in the picture
CHECK_SIDE = 256  # the check looks at a copy at most this large


def _skin_share(rgb: np.ndarray) -> float:
    """Share of pixels in the usual YCrCb skin range (all skin tones: chroma, not brightness)."""
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    luma, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    return float(((cr >= 135) & (cr <= 175) & (cb >= 85) & (cb <= 130) & (luma > 60)).mean())


def is_product_shot(image: Image.Image) -> bool:
    """An item alone on a flat backdrop with no skin in sight: no person wears it. False means
    "not sure" (a skin-coloured garment, a studio backdrop): the pose model decides."""
    if max(image.size) > CHECK_SIDE:
        image = image.resize(fitted(image.size, CHECK_SIDE), Image.NEAREST)
    rgb = np.asarray(image.convert("RGB"))
    if float(border_pixels(rgb).astype(np.float32).std(axis=0).mean()) >= FLAT_SPREAD:
        return False
    return _skin_share(rgb) < SKIN_SHARE

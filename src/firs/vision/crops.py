"""Cutting an item out of a picture: garment pixels on white, tight crops, salient objects."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

WHITE = 255
BACKGROUND_DISTANCE = 40  # Lab distance from the border colour that counts as "object"


def masked_on_white(rgb: np.ndarray, mask: np.ndarray, margin: float = 0.04) -> Image.Image:
    """The mask's pixels on white, cropped to the mask's box (plus a margin)."""
    out = np.full_like(rgb, WHITE)
    out[mask] = rgb[mask]
    box = mask_box(mask, margin)
    if box is None:
        return Image.fromarray(rgb)
    x0, y0, x1, y1 = box
    return Image.fromarray(out[y0:y1, x0:x1])


def mask_box(mask: np.ndarray, margin: float = 0.0) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    height, width = mask.shape
    pad_x = int((xs.max() - xs.min() + 1) * margin)
    pad_y = int((ys.max() - ys.min() + 1) * margin)
    return (
        max(0, int(xs.min()) - pad_x),
        max(0, int(ys.min()) - pad_y),
        min(width, int(xs.max()) + 1 + pad_x),
        min(height, int(ys.max()) + 1 + pad_y),
    )


def foreground_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels unlike the picture's border colour (a product shot's backdrop), specks removed."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    background = np.median(border, axis=0)
    distance = np.linalg.norm(lab - background, axis=2)
    mask = (distance > BACKGROUND_DISTANCE).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return mask.astype(bool)


def uniform_border(rgb: np.ndarray, tolerance: float = 12.0) -> bool:
    """True when the border is one flat colour (a studio or shop backdrop)."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    return float(np.median(np.linalg.norm(border - np.median(border, axis=0), axis=1))) < tolerance


def salient_box(rgb: np.ndarray, min_share: float = 0.02, max_share: float = 0.95) -> tuple[int, int, int, int] | None:
    """The box of the largest object standing out from a flat border colour, or None."""
    if not uniform_border(rgb):
        return None
    mask = foreground_mask(rgb)
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    share = stats[biggest, cv2.CC_STAT_AREA] / mask.size
    if not min_share <= share <= max_share:
        return None
    x, y, w, h = (int(v) for v in stats[biggest, :4])
    return x, y, x + w, y + h


def tight_crop(image: Image.Image, margin: float = 0.04) -> Image.Image:
    """A product shot cropped to its item when the backdrop is flat; otherwise unchanged."""
    rgb = np.asarray(image)
    if not uniform_border(rgb):
        return image
    box = mask_box(foreground_mask(rgb), margin)
    if box is None:
        return image
    return image.crop(box)

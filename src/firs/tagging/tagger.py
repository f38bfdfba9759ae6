"""Labels from each source, each with its confidence: catalogue metadata, the ImageNet head,
the localiser's region and the garment's dominant colour."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..vision.crops import NEAR_WHITE, border_pixels, item_mask
from .vocabulary import COLOURS, IMAGENET_TYPES, labels_in_text, region_of

# Metadata fields that name a type or colour outright (CSV columns, Amazon categories).
TYPED_FIELDS = ("articleType", "article_type", "type", "subCategory", "sub_category", "category")
COLOUR_FIELDS = ("baseColour", "base_colour", "colour", "color")
MIN_CLASSIFIER = 0.05  # a type the head gives less probability than this is not a label
MIN_COLOUR_SHARE = 0.25  # second colour kept when it covers this share of the garment
COLOUR_SIDE = 64


@dataclass(frozen=True)
class Tag:
    label: str  # kind:value
    source: str  # metadata | title | classifier | region | colour
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "confidence": round(self.confidence, 3)}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Tag:
        """The inverse of `as_dict` (a shard row's labels, the store's `tags_of`)."""
        return cls(str(record["label"]), str(record["source"]), float(record["confidence"]))


def metadata_tags(title: str, categories: Iterable[str], metadata: Mapping[str, Any]) -> list[Tag]:
    """Types and colours named by the catalogue: typed fields and categories fully trusted, the title less."""
    tags: dict[str, Tag] = {}
    typed = [str(metadata[f]) for f in (*TYPED_FIELDS, *COLOUR_FIELDS) if metadata.get(f)]
    for text in [*categories, *typed]:
        for label in labels_in_text(text):
            tags.setdefault(label, Tag(label, "metadata", 1.0))
    for label in labels_in_text(title):
        tags.setdefault(label, Tag(label, "title", 0.7))
    return _with_regions(list(tags.values()))


def classifier_tags(probabilities: np.ndarray, top: int = 2) -> list[Tag]:
    """The garment types the ImageNet head sees: its class probabilities summed per type."""
    scores: dict[str, float] = {}
    for index, name in IMAGENET_TYPES.items():
        scores[name] = scores.get(name, 0.0) + float(probabilities[index])
    ranked = sorted(scores.items(), key=lambda item: -item[1])[:top]
    return [Tag(f"type:{name}", "classifier", score) for name, score in ranked if score >= MIN_CLASSIFIER]


def colour_names(lab: np.ndarray) -> np.ndarray:
    """A colour name index (into COLOUR_NAMES) per OpenCV 8-bit Lab pixel, by lightness,
    chroma and hue: achromatic pixels by lightness alone, the rest by hue bands, with dark
    oranges and yellows as brown and pale ones as beige."""
    lightness = lab[:, 0].astype(np.float32) * (100 / 255)
    a = lab[:, 1].astype(np.float32) - 128
    b = lab[:, 2].astype(np.float32) - 128
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a)) % 360
    name = np.select(
        [
            (hue >= 345) | (hue < 20),
            hue < 55,
            hue < 80,
            hue < 115,
            hue < 200,
            hue < 315,
        ],
        [
            np.where(lightness > 55, _INDEX["pink"], _INDEX["red"]),
            _INDEX["red"],
            _INDEX["orange"],
            _INDEX["yellow"],
            _INDEX["green"],
            _INDEX["blue"],
        ],
        _INDEX["purple"],
    )
    warm = (hue >= 20) & (hue < 115)
    name = np.where(warm & (lightness < 45) & (chroma < 65), _INDEX["brown"], name)
    name = np.where(warm & (lightness > 60) & (chroma < 30), _INDEX["beige"], name)
    grey = np.where(lightness < 32, _INDEX["black"], np.where(lightness > 80, _INDEX["white"], _INDEX["grey"]))
    return np.where(chroma < 8, grey, name)


COLOUR_NAMES = list(COLOURS)
_INDEX = {name: i for i, name in enumerate(COLOUR_NAMES)}


def colour_tags(item: Image.Image) -> list[Tag]:
    """The dominant colour(s) of an item on white or on a flat backdrop.

    Item pixels: those not (near) pure white, or, on a backdrop of another colour, those
    standing out from it. An item that does not stand out from a white backdrop at all is
    white itself (confidence 0.5)."""
    small = np.asarray(item.convert("RGB").resize((COLOUR_SIDE, COLOUR_SIDE), Image.NEAREST))
    pixels = small.reshape(-1, 3)
    if np.median(border_pixels(small).min(axis=1)) >= 235:  # a white backdrop (or a cut-out on white)
        pixels = pixels[(pixels < NEAR_WHITE).any(axis=1)]
        if len(pixels) < 0.03 * COLOUR_SIDE * COLOUR_SIDE:
            return [Tag("colour:white", "colour", 0.5)]
    else:
        pixels = small[item_mask(small)]
    if len(pixels) < 16:
        return []
    lab = cv2.cvtColor(pixels[None].astype(np.uint8), cv2.COLOR_RGB2LAB)[0]
    shares = np.bincount(colour_names(lab), minlength=len(COLOUR_NAMES)) / len(lab)
    order = np.argsort(-shares)
    tags = [Tag(f"colour:{COLOUR_NAMES[order[0]]}", "colour", float(shares[order[0]]))]
    if shares[order[1]] >= MIN_COLOUR_SHARE:
        tags.append(Tag(f"colour:{COLOUR_NAMES[order[1]]}", "colour", float(shares[order[1]])))
    return tags


def region_tag(region: str, confidence: float = 1.0) -> Tag:
    return Tag(f"region:{region}", "region", confidence)


def _with_regions(tags: list[Tag]) -> list[Tag]:
    """Each type implies its body region, as confident as the type."""
    out = list(tags)
    seen = {t.label for t in tags}
    for tag in tags:
        region = region_of(tag.label) if tag.label.startswith("type:") else None
        if region and f"region:{region}" not in seen:
            seen.add(f"region:{region}")
            out.append(Tag(f"region:{region}", tag.source, tag.confidence))
    return out


def product_tags(title: str, categories: Iterable[str], metadata: Mapping[str, Any], image: list[Tag]) -> list[Tag]:
    """A catalogue product's labels: metadata first; the picture's labels (classifier types,
    colour, the localiser's region) fill in the kinds metadata does not name."""
    tags = metadata_tags(title, categories, metadata)
    named = {t.label.split(":")[0] for t in tags if t.source == "metadata"}
    for tag in image:
        kind = tag.label.split(":")[0]
        if kind not in named:
            tags += _with_regions([tag]) if kind == "type" else [tag]
    return _unique(tags)


def _unique(tags: list[Tag]) -> list[Tag]:
    best: dict[str, Tag] = {}
    for tag in tags:
        if tag.label not in best or tag.confidence > best[tag.label].confidence:
            best[tag.label] = tag
    return sorted(best.values(), key=lambda t: (t.label.split(":")[0], -t.confidence))

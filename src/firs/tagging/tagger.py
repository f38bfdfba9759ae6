"""Labels from each source, each with its confidence: catalogue metadata, the ImageNet head,
the localiser's region and the garment's dominant colour."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..vision.crops import item_mask
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


_CENTRES_LAB = cv2.cvtColor(np.array([[rgb for rgb, _words in COLOURS.values()]], np.uint8), cv2.COLOR_RGB2LAB)[
    0
].astype(np.float32)
_COLOUR_NAMES = list(COLOURS)


def colour_tags(item: Image.Image) -> list[Tag]:
    """The dominant colour(s) of an item on a flat backdrop (the backdrop's pixels are left out)."""
    small = np.asarray(item.convert("RGB").resize((COLOUR_SIDE, COLOUR_SIDE), Image.NEAREST))
    pixels = small[item_mask(small)]
    if len(pixels) < 16:
        return []
    lab = cv2.cvtColor(pixels[None].astype(np.uint8), cv2.COLOR_RGB2LAB)[0].astype(np.float32)
    nearest = np.argmin(((lab[:, None, :] - _CENTRES_LAB[None]) ** 2).sum(axis=2), axis=1)
    shares = np.bincount(nearest, minlength=len(_COLOUR_NAMES)) / len(nearest)
    order = np.argsort(-shares)
    tags = [Tag(f"colour:{_COLOUR_NAMES[order[0]]}", "colour", float(shares[order[0]]))]
    if shares[order[1]] >= MIN_COLOUR_SHARE:
        tags.append(Tag(f"colour:{_COLOUR_NAMES[order[1]]}", "colour", float(shares[order[1]])))
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

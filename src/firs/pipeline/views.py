"""What the catalogue side embeds for each search mode ("view").

simple: the whole product photo, centre-cropped — what a whole query photo is compared to.
fine:   the item alone on white — a tight crop when the photo is a product on a flat
        backdrop, or, when a person wears it, the garment cut out by the same localiser
        the queries go through, in the region the product's category names.
"""

from __future__ import annotations

from PIL import Image

from ..vision.crops import tight_crop
from ..vision.embedder import Embedder
from ..vision.localiser import GarmentLocaliser
from ..vision.product_shot import is_product_shot

FINE_VIEW_VERSION = 2  # 2: product shots told apart before the pose model; part of cached features' keys
FINE_RESIZE = "crop"  # centre square of the cut-out: R@1 0.132 -> 0.161 over letterboxing (parse subset)
VIEW_PROCESSING = {
    "simple": "whole image, the embedder's resize policy",
    "fine": "item alone on white: tight crop of a product shot on a flat backdrop, or the garment "
    "cut out by the pose localiser (region from the product's category) when a person wears it",
}
_CATEGORY_REGIONS = (
    ("feet", ("shoe", "sneaker", "boot", "sandal", "heel", "loafer", "slipper", "flip flop", "footwear")),
    ("full", ("dress", "gown", "jumpsuit", "romper", "coat", "overall", "saree", "kurta")),
    ("lower", ("trouser", "jean", "pant", "skirt", "short", "legging", "jogger", "capri", "bottom")),
)


def region_for_categories(categories: list[str]) -> str:
    """The body region a product is worn on, from words in its categories; tops by default."""
    text = " ".join(categories).lower()
    for region, words in _CATEGORY_REGIONS:
        if any(word in text for word in words):
            return region
    return "upper"


def fine_view(
    image: Image.Image, categories: list[str], localiser: GarmentLocaliser
) -> tuple[Image.Image, str, str | None]:
    """The catalogue image as the fine mode sees it, how it was made, and the body region
    it was cut from (None for a product shot). Catalogue pictures are taken upright."""
    if is_product_shot(image):
        return tight_crop(image), "product shot", None
    located = localiser.locate(image, region=region_for_categories(categories), strict=False, upright=True)
    if located.fallback is None:
        item = located.items[0]
        return item.view, f"worn ({item.region.name})", item.region.name
    return tight_crop(image), "product shot", None


def view_resize(view: str, embedder: Embedder) -> str:
    return FINE_RESIZE if view == "fine" else embedder.spec.resize

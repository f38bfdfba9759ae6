"""What a street photo does to a garment, applied to a clean garment cut-out.

The person stands farther away (fewer pixels: shrunk and enlarged again), off-centre and
cropped by the localiser's box, partly hidden by what is in front (a bag, an arm, another
product), out of focus and JPEG-compressed, in other light. Hue is never changed: colour is
part of what identifies a product. Each draw is seeded, so a feature cache is reproducible.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageEnhance, ImageFilter

AUGMENTATIONS = ("resolution", "crop", "occlusion", "blur", "jpeg", "light")


def street_view(
    cut_out: Image.Image, rng: random.Random, occluders: list[Image.Image], kinds: tuple[str, ...] = AUGMENTATIONS
) -> Image.Image:
    """One augmented copy of a garment cut-out on white (RGB)."""
    image = cut_out.convert("RGB")
    width, height = image.size
    if "resolution" in kinds:
        scale = rng.uniform(0.2, 0.6)
        small = image.resize((max(8, round(width * scale)), max(8, round(height * scale))), Image.BILINEAR)
        image = small.resize((width, height), Image.BILINEAR)
    if "crop" in kinds:
        keep = rng.uniform(0.75, 1.0)
        w, h = round(width * keep), round(height * keep)
        x, y = rng.randint(0, width - w), rng.randint(0, height - h)
        image = image.crop((x, y, x + w, y + h))
        width, height = image.size
    if "occlusion" in kinds and rng.random() < 0.6:
        side = rng.uniform(0.2, 0.45)
        w, h = max(4, round(width * side)), max(4, round(height * side * rng.uniform(0.6, 1.4)))
        if occluders and rng.random() < 0.7:
            patch = rng.choice(occluders).convert("RGB").resize((w, h), Image.BILINEAR)
        else:
            patch = Image.new("RGB", (w, h), tuple(rng.randint(0, 255) for _ in range(3)))
        image.paste(patch, (rng.randint(0, max(0, width - w)), rng.randint(0, max(0, height - h))))
    if "blur" in kinds and rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    if "light" in kinds:
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
        image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.8, 1.2))
    if "jpeg" in kinds:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=rng.randint(35, 90))
        buffer.seek(0)
        image = Image.open(buffer).convert("RGB")
    return image

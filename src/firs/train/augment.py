"""What a street photo does to a garment, applied to a clean garment cut-out.

`street_view`: the person stands farther away (fewer pixels: shrunk and enlarged again),
off-centre and cropped by the localiser's box, partly hidden by what is in front (a bag, an
arm, another product), out of focus and JPEG-compressed, in other light. Hue is never
changed: colour is part of what identifies a product. Each draw is seeded, so a feature cache is reproducible.

`street_scene`: the whole photo's person farther away in a street-like scene — smaller,
off-centre, among textures and other products — for the localiser to find and cut out again,
so training sees its mistakes in clutter (a mask that takes in the scene, a box cut short)
as well as the pixels a distant garment has.

`worn_view`: what being worn does to a flat product shot, for catalogues with no photo of a
person at all: the garment bent in perspective and turned a little, arms across its sides,
and the scene showing through around its edges where the localiser's mask is not tight.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from ..vision.crops import NEAR_WHITE

Box = tuple[int, int, int, int]
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
            patch = Image.new("RGB", (w, h), _colour(rng))
        image.paste(patch, (rng.randint(0, max(0, width - w)), rng.randint(0, max(0, height - h))))
    if "blur" in kinds and rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    if "light" in kinds:
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
        image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.8, 1.2))
    if "jpeg" in kinds:
        image = _through_jpeg(image, rng.randint(35, 90))
    return image


def street_scene(
    photo: Image.Image, person: np.ndarray, rng: random.Random, clutter: list[Image.Image]
) -> tuple[Image.Image, Box]:
    """`photo`'s person (`person`: the pose's mask, 0..1, at the photo's size) at 35-70 % of a
    640 x 480 scene's height, left or right of centre, among stripes, blobs and `clutter`
    pictures, out of focus a little and JPEG-compressed (RGB); and the box the photo went to."""
    size = (640, 480)
    scene = Image.linear_gradient("L").rotate(90 * rng.randrange(4)).resize(size).convert("RGB")
    scene = Image.blend(scene, Image.new("RGB", size, _colour(rng, 30, 230)), rng.uniform(0.4, 0.8))
    draw = ImageDraw.Draw(scene)
    for _ in range(rng.randint(6, 16)):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        if rng.random() < 0.5:
            gap, width = rng.randint(8, 20), rng.randint(3, 8)
            for offset in range(0, rng.randint(60, 160), gap):
                draw.line([x, y + offset, x + rng.randint(80, 200), y + offset], fill=_colour(rng), width=width)
        else:
            draw.ellipse([x, y, x + rng.randint(30, 150), y + rng.randint(30, 150)], fill=_colour(rng))
    for _ in range(rng.randint(3, 9) if clutter else 0):
        other = rng.choice(clutter).copy()
        other.thumbnail((rng.randint(80, 180),) * 2)
        scene.paste(other.convert("RGB"), (rng.randrange(size[0] - other.width), rng.randrange(size[1] - other.height)))
    height = round(size[1] * rng.uniform(0.35, 0.7))
    width = min(size[0] // 2, max(1, round(photo.width * height / photo.height)))
    alpha = Image.fromarray((np.clip(person, 0, 1) * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
    left = rng.randint(0, size[0] // 4) if rng.random() < 0.5 else rng.randint(size[0] // 2, size[0] - width)
    person_pixels = photo.convert("RGB").resize((width, height), Image.BILINEAR)
    top = rng.randint(0, size[1] - height)
    scene.paste(person_pixels, (left, top), alpha)
    scene = scene.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return _through_jpeg(scene, rng.randint(60, 92)), (left, top, left + width, top + height)


def _through_jpeg(image: Image.Image, quality: int) -> Image.Image:
    """`image` as a JPEG of that quality would decode (RGB)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _colour(rng: random.Random, low: int = 0, high: int = 255) -> tuple[int, int, int]:
    return (rng.randint(low, high), rng.randint(low, high), rng.randint(low, high))


_SKIN = ((224, 172, 140), (198, 134, 96), (141, 85, 54), (241, 194, 167), (110, 70, 45))


def worn_view(shot: Image.Image, rng: random.Random, scenes: list[Image.Image]) -> Image.Image:
    """A product shot's item (on white) as a worn garment's cut-out might look (RGB, on white)."""
    image = shot.convert("RGB")
    width, height = image.size
    jitter = [(rng.uniform(-0.12, 0.12) * width, rng.uniform(-0.08, 0.08) * height) for _ in range(4)]
    corners = [(0, 0), (width, 0), (width, height), (0, height)]
    moved = [(x + dx, y + dy) for (x, y), (dx, dy) in zip(corners, jitter, strict=True)]
    image = image.transform(
        (width, height), Image.PERSPECTIVE, _perspective(moved, corners), Image.BILINEAR, fillcolor="white"
    )
    image = image.rotate(rng.uniform(-10, 10), Image.BILINEAR, fillcolor="white")
    garment = Image.fromarray((np.asarray(image) < NEAR_WHITE).any(axis=2))
    draw = ImageDraw.Draw(image)
    for side in (0, 1):  # arms along the sides, each sometimes
        if rng.random() < 0.5:
            arm = rng.uniform(0.06, 0.14) * width
            x = rng.uniform(0, 0.12) * width if side == 0 else width - rng.uniform(0, 0.12) * width - arm
            top = rng.uniform(0.1, 0.5) * height
            draw.rectangle((x, top, x + arm, height), fill=rng.choice(_SKIN))
    if scenes:
        scene = rng.choice(scenes).convert("RGB").resize((width, height), Image.BILINEAR)
        halo = garment.convert("L").filter(ImageFilter.MaxFilter(2 * rng.randint(1, 4) + 1))
        leak = Image.fromarray((np.asarray(halo) > 0) & ~np.asarray(garment))
        image.paste(scene, (0, 0), leak.convert("L"))
    return image


def _perspective(source: list[tuple[float, float]], target: list[tuple[int, int]]) -> list[float]:
    """PIL's 8 perspective coefficients that map output pixels (`target`) to input (`source`)."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    values = np.array([c for pair in source for c in pair], dtype=np.float64)
    return list(np.linalg.solve(np.array(rows, dtype=np.float64), values))

"""Drawing garments: shapes, colours and patterns a person recognises, with no data files."""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

COLOURS = {
    "red": (200, 30, 40),
    "navy": (25, 40, 110),
    "green": (40, 140, 70),
    "yellow": (235, 190, 40),
    "black": (25, 25, 25),
    "pink": (235, 120, 170),
}
PATTERNS = ("solid", "striped", "polka-dot", "checked")
# kind -> (category path, base price)
KINDS = {
    "t-shirt": (["Clothing", "Tops", "T-Shirts"], 14.99),
    "long-sleeve shirt": (["Clothing", "Tops", "Shirts"], 29.99),
    "dress": (["Clothing", "Dresses"], 49.99),
    "skirt": (["Clothing", "Skirts"], 34.99),
    "trousers": (["Clothing", "Bottoms", "Trousers"], 44.99),
    "shorts": (["Clothing", "Bottoms", "Shorts"], 24.99),
    "sneaker": (["Shoes", "Sneakers"], 59.99),
    "handbag": (["Accessories", "Bags"], 39.99),
}
BRANDS = ("Northwind", "Alba", "Kestrel", "Meridian")


@dataclass(frozen=True)
class GarmentSpec:
    kind: str
    colour: str
    pattern: str

    @property
    def product_id(self) -> str:
        return f"{self.kind}-{self.colour}-{self.pattern}".replace(" ", "-")

    @property
    def title(self) -> str:
        pattern = "" if self.pattern == "solid" else f" {self.pattern}"
        return f"{self.colour.capitalize()}{pattern} {self.kind}"


def _polygons(kind: str, s: float) -> list[list[tuple[float, float]]]:
    """Outline polygons of a garment in a unit box scaled by s (origin top-left)."""
    shapes = {
        "t-shirt": [
            [
                (0.3, 0.12),
                (0.42, 0.1),
                (0.5, 0.16),
                (0.58, 0.1),
                (0.7, 0.12),
                (0.92, 0.3),
                (0.8, 0.42),
                (0.72, 0.36),
                (0.72, 0.9),
                (0.28, 0.9),
                (0.28, 0.36),
                (0.2, 0.42),
                (0.08, 0.3),
            ]
        ],
        "long-sleeve shirt": [
            [
                (0.3, 0.1),
                (0.44, 0.08),
                (0.5, 0.16),
                (0.56, 0.08),
                (0.7, 0.1),
                (0.9, 0.35),
                (0.96, 0.85),
                (0.86, 0.87),
                (0.74, 0.42),
                (0.74, 0.92),
                (0.26, 0.92),
                (0.26, 0.42),
                (0.14, 0.87),
                (0.04, 0.85),
                (0.1, 0.35),
            ]
        ],
        "dress": [
            [
                (0.38, 0.06),
                (0.44, 0.06),
                (0.5, 0.14),
                (0.56, 0.06),
                (0.62, 0.06),
                (0.64, 0.38),
                (0.84, 0.94),
                (0.16, 0.94),
                (0.36, 0.38),
            ]
        ],
        "skirt": [[(0.3, 0.2), (0.7, 0.2), (0.7, 0.28), (0.88, 0.82), (0.12, 0.82), (0.3, 0.28)]],
        "trousers": [[(0.3, 0.06), (0.7, 0.06), (0.74, 0.94), (0.56, 0.94), (0.5, 0.34), (0.44, 0.94), (0.26, 0.94)]],
        "shorts": [[(0.24, 0.25), (0.76, 0.25), (0.84, 0.72), (0.56, 0.75), (0.5, 0.45), (0.44, 0.75), (0.16, 0.72)]],
        "sneaker": [
            [
                (0.08, 0.5),
                (0.38, 0.42),
                (0.5, 0.3),
                (0.64, 0.32),
                (0.7, 0.46),
                (0.92, 0.56),
                (0.94, 0.68),
                (0.08, 0.68),
            ],
            [(0.06, 0.68), (0.95, 0.68), (0.94, 0.76), (0.07, 0.76)],
        ],
        "handbag": [[(0.2, 0.38), (0.8, 0.38), (0.86, 0.86), (0.14, 0.86)]],
    }
    return [[(x * s, y * s) for x, y in poly] for poly in shapes[kind]]


def _pattern_layer(size: int, colour: tuple[int, int, int], pattern: str, step: int) -> Image.Image:
    light = tuple(min(255, c + (255 - c) * 3 // 4) for c in colour)
    layer = Image.new("RGB", (size, size), colour)
    draw = ImageDraw.Draw(layer)
    if pattern == "striped":
        for y in range(0, size, step):
            draw.rectangle([0, y, size, y + step // 2], fill=light)
    elif pattern == "polka-dot":
        for y in range(step // 2, size, step):
            for x in range(step // 2 + (y // step % 2) * step // 2, size, step):
                draw.ellipse([x - step // 4, y - step // 4, x + step // 4, y + step // 4], fill=light)
    elif pattern == "checked":
        for y in range(0, size, step):
            for x in range(0, size, step):
                if (x // step + y // step) % 2 == 0:
                    draw.rectangle([x, y, x + step - 1, y + step - 1], fill=light)
    return layer


def draw_garment(spec: GarmentSpec, size: int = 256, style: int = 0) -> Image.Image:
    """The garment on white. `style` > 0 draws it differently: line width, pattern scale, shading."""
    rng = random.Random(f"{spec.product_id}/{style}")
    colour = COLOURS[spec.colour]
    if style:
        colour = tuple(max(0, min(255, c + rng.randint(-18, 18))) for c in colour)
    mask = Image.new("L", (size, size), 0)
    outline = Image.new("L", (size, size), 0)
    polygons = _polygons(spec.kind, size)
    width = 3 if not style else rng.randint(4, 7)
    for poly in polygons:
        ImageDraw.Draw(mask).polygon(poly, fill=255)
        ImageDraw.Draw(outline).line([*poly, poly[0]], fill=255, width=width)
    if spec.kind == "handbag":
        ImageDraw.Draw(outline).arc(
            [size * 0.32, size * 0.16, size * 0.68, size * 0.6], 180, 360, fill=255, width=width + 3
        )
    step = size // 10 if not style else size // rng.randint(8, 12)
    fill = _pattern_layer(size, colour, spec.pattern, max(6, step))
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(fill, (0, 0), mask)
    dark = tuple(c // 3 for c in colour)
    canvas.paste(Image.new("RGB", (size, size), dark), (0, 0), outline)
    if style:
        shade = Image.linear_gradient("L").resize((size, size)).point(lambda v: v // 5)
        canvas = Image.composite(
            Image.new("RGB", (size, size), (0, 0, 0)),
            canvas,
            Image.composite(shade, Image.new("L", (size, size), 0), mask),
        )
    return canvas


def cluttered_scene(garment: Image.Image, seed: int = 7, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """The garment, rotated and smaller, off-centre on a busy background of shapes."""
    rng = random.Random(seed)
    scene = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(scene)
    for _ in range(40):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randint(10, 90), rng.randint(10, 90)
        fill = tuple(rng.randint(60, 230) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h], fill=fill)
    scene = scene.filter(ImageFilter.GaussianBlur(2))
    item = garment.resize((int(size[1] * 0.8),) * 2)
    alpha = Image.eval(item.convert("L"), lambda v: 0 if v > 245 else 255)
    item, alpha = item.rotate(8, expand=True, fillcolor=(255, 255, 255)), alpha.rotate(8, expand=True)
    scene.paste(item, (int(size[0] * 0.24), int(size[1] * 0.04)), alpha)
    return scene


def street_scene(garment: Image.Image, seed: int = 7, size: tuple[int, int] = (480, 640)) -> Image.Image:
    """The garment on a hanger against a whitewashed brick wall above a pavement, with a lamp,
    a drainpipe and a potted plant near the edges: a street photo in which the garment is one
    distinct object, as `firs search --mode fine` expects to find it without a person."""
    rng = random.Random(seed)
    w, h = size
    wall, mortar, paving = (246, 244, 240), (226, 223, 218), (206, 203, 198)
    ground = int(h * 0.84)
    scene = Image.new("RGB", size, mortar)
    draw = ImageDraw.Draw(scene)
    brick_w, brick_h = 56, 26
    for row, y in enumerate(range(-brick_h // 2, ground, brick_h)):
        for x in range(-(row % 2) * brick_w // 2, w, brick_w):
            shade = rng.randint(-4, 3)
            draw.rectangle([x + 2, y + 2, x + brick_w - 1, y + brick_h - 1], fill=tuple(c + shade for c in wall))
    draw.rectangle([0, ground, w, h], fill=paving)
    joint = tuple(c - 22 for c in paving)
    for x in range(-60, w + 120, 96):
        draw.line([x, ground, x - 70, h], fill=joint, width=2)
    draw.line([0, (ground + h) // 2, w, (ground + h) // 2], fill=joint, width=2)
    draw.rectangle([0, ground - 5, w, ground], fill=tuple(c - 30 for c in wall))  # the wall's foot
    pipe = int(w * 0.93)
    draw.rectangle([pipe, 0, pipe + 12, ground + 2], fill=(92, 96, 100))
    draw.rectangle([int(w * 0.07), int(h * 0.07), int(w * 0.15), int(h * 0.1)], fill=(45, 45, 50))
    draw.ellipse([int(w * 0.08), int(h * 0.095), int(w * 0.14), int(h * 0.135)], fill=(250, 226, 150))
    x0, y0, x1, y1 = int(w * 0.03), ground - int(h * 0.1), int(w * 0.17), ground + int(h * 0.02)
    draw.polygon([(x0, y0), (x1, y0), (x1 - 8, y1), (x0 + 8, y1)], fill=(168, 88, 56))
    for _ in range(16):
        x, y = rng.randint(x0 + 4, x1 - 4), rng.randint(y0 - int(h * 0.12), y0)
        draw.ellipse([x - 14, y - 8, x + 14, y + 8], fill=(40 + rng.randint(0, 30), 105 + rng.randint(0, 40), 45))
    side = int(h * 0.64)
    item = garment.resize((side, side))
    alpha = Image.eval(item.convert("L"), lambda v: 0 if v > 245 else 255)
    left, top = (w - side) // 2, int(h * 0.1)
    shadow = Image.new("L", size, 0)
    shadow.paste(Image.eval(alpha, lambda v: v * 2 // 5), (left + 10, top + 12))
    scene.paste((0, 0, 0), (0, 0), shadow.filter(ImageFilter.GaussianBlur(8)))
    hook_x, hook_y = left + side // 2, top - 12
    draw = ImageDraw.Draw(scene)
    draw.line([hook_x - 44, top + 24, hook_x, hook_y, hook_x + 44, top + 24], fill=(70, 60, 50), width=4)
    draw.ellipse([hook_x - 4, hook_y - 12, hook_x + 4, hook_y - 4], fill=(70, 70, 70))
    scene.paste(item, (left, top), alpha)
    return scene.filter(ImageFilter.GaussianBlur(0.7))


def catalogue_specs() -> list[GarmentSpec]:
    """Every kind in four colours, each colour with two patterns: 64 products."""
    colours = list(COLOURS)
    specs: list[GarmentSpec] = []
    for k, kind in enumerate(KINDS):
        for c in range(4):
            colour = colours[(k + c) % len(colours)]
            for p in range(2):
                specs.append(GarmentSpec(kind, colour, PATTERNS[(k + c + p * 2) % len(PATTERNS)]))
    return specs

"""A harder, SYNTHETIC query set made from the dev queries: the person cut out (pose
person mask), shrunk to 40-65 % of the scene height, pasted off-centre into a cluttered
scene of other product photos (flat shots, never the query's own product) and textures.
    python bench/make_synthetic_queries.py [--n 1000] [--out bench/out/synthetic]
        [--scene 640x480] [--person 0.4 0.65]
Writes OUT/queries/*.jpg and OUT/queries.tsv (header query<TAB>product_id). A bigger scene with a
smaller share for the person keeps the person's own pixels (the dev photos are 256 px tall) in a
photo that a working size shrinks more: a person seen from further off in a phone's photo.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from firs.vision.decode import load_image
from firs.vision.pose import PoseEstimator

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "viton-dev"
SCENE = (640, 480)


def clutter(rng: random.Random, products: list[Path], exclude: str, size: tuple[int, int] = SCENE) -> Image.Image:
    scene = Image.linear_gradient("L").rotate(rng.choice((0, 90, 180, 270))).resize(size).convert("RGB")
    tint = Image.new("RGB", size, tuple(rng.randint(40, 220) for _ in range(3)))
    scene = Image.blend(scene, tint, 0.6)
    draw = ImageDraw.Draw(scene)
    for _ in range(12):  # textures: stripes and blobs
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        if rng.random() < 0.5:
            for i in range(0, 120, 12):
                draw.line([x, y + i, x + 160, y + i], fill=colour, width=5)
        else:
            draw.ellipse([x, y, x + rng.randint(30, 140), y + rng.randint(30, 140)], fill=colour)
    for _ in range(7):  # other products lying around
        path = rng.choice(products)
        if path.stem == exclude:
            continue
        other = load_image(path)
        other.thumbnail((rng.randint(90, 170),) * 2)
        scene.paste(other, (rng.randrange(size[0] - other.width), rng.randrange(size[1] - other.height)))
    return scene.filter(ImageFilter.GaussianBlur(0.8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("bench/out/synthetic"))
    parser.add_argument("--queries", type=Path, help="make them from this TSV's queries (default: all dev queries)")
    parser.add_argument("--scene", default="640x480", help="the scene's width x height")
    parser.add_argument("--person", type=float, nargs=2, default=(0.4, 0.65), help="the person's share of its height")
    args = parser.parse_args()
    parts = args.scene.lower().split("x")
    if len(parts) != 2 or not all(v.isdigit() for v in parts) or min(int(v) for v in parts) < 64:
        parser.error(f"--scene {args.scene!r}: give WIDTHxHEIGHT, each at least 64")
    size = (int(parts[0]), int(parts[1]))
    if not 0 < args.person[0] <= args.person[1] <= 1:
        parser.error(f"--person {args.person[0]} {args.person[1]}: give LOW HIGH with 0 < LOW <= HIGH <= 1")
    rng = random.Random(args.seed)
    source = args.queries or args.data / "queries.tsv"
    with source.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    for row in rows:  # query paths are relative to their TSV (absolute ones stay as they are)
        row["query"] = str(source.parent / row["query"])
    rows = rng.sample(rows, min(args.n, len(rows)))
    products = sorted((args.data / "products").glob("*.jpg"))
    estimator = PoseEstimator()
    (args.out / "queries").mkdir(parents=True, exist_ok=True)
    written = []
    for row in tqdm(rows, desc="synthetic queries"):
        person = load_image(row["query"])
        pose = estimator.estimate(np.asarray(person))
        if pose is None:
            continue
        alpha = Image.fromarray((np.clip(pose.mask, 0, 1) * 255).astype(np.uint8))
        height = int(size[1] * rng.uniform(*args.person))
        width = int(person.width * height / person.height)
        person, alpha = person.resize((width, height)), alpha.resize((width, height))
        scene = clutter(rng, products, row["product_id"], size)
        left = rng.choice((rng.randint(0, size[0] // 4), rng.randint(size[0] // 2, size[0] - width)))
        top = rng.randint(0, size[1] - height)
        scene.paste(person, (left, top), alpha)
        name = f"queries/syn_{Path(row['query']).stem}.jpg"
        scene.save(args.out / name, quality=88)
        written.append((name, row["product_id"]))
    with (args.out / "queries.tsv").open("w") as handle:
        handle.write("query\tproduct_id\n")
        handle.writelines(f"{name}\t{pid}\n" for name, pid in written)
    missed = len(rows) - len(written)
    print(
        f"{len(written)} synthetic queries in {args.out}"
        + (f" ({missed} sampled had no person found)" if missed else "")
    )


if __name__ == "__main__":
    main()

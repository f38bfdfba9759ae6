"""Which garment signature beside the trained embedding? Colour spaces, cells, layout, pattern (issue 10).

The fine view's score is cos(embeddings) + w · (colour signatures' dot). This keeps, once, the
trained embedding and the prepared fine picture (224 px, uint8) of every catalogue product and
of every held-out query's garment cut-out (the index's real fine search made it), in
RUN/signatures/, then scores signature variants fused with the trained embedding by exact search
over the whole gallery:
  - RGB cells 4³, 6³ (the index's), 8³; the square root (Bhattacharyya) or not;
  - CIE Lab cells; hue/saturation/value cells with a grey axis;
  - layout: one histogram per horizontal band of the picture (a top's yoke against its body);
  - pattern: a histogram of local binary patterns of the garment's lightness (plain, striped,
    printed), fused as a third part with its own weight;
  - last, the product's own default signature (firs.vision.colour_signature) at the default
    weight, computed from the same pictures; with --second-model, also another model's (say,
    another training seed's) cosines and the two models' mean, with that signature.
The held-out queries are split in two halves by product id: choose a setting on half A, and
half B tells whether the choice holds on queries it was not chosen on.
    python bench/colour_variants.py --run bench/out/dev-s2
    python bench/colour_variants.py --run bench/out/dev-x2 --product-only --product-weights 0.3 0.6 1
(the second: only the product's own signature, at each weight, beside a later model's embedding).
RUN is a bench/devset_train.sh output folder (catalog.csv, heldout.tsv, street/queries.tsv,
model/, index-model/ built with the RGB signature, kind "rgb6"). The first line of each query set
is that index's own ranks; the "rgb6 sqrt, w 0.4" line recomputes them and should read the same.
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rank_fusion import DATA, SETS, fine_cuts, ranks_of

from firs.catalog.sources import read_catalog
from firs.eval.metrics import mean_average_precision, recall_at
from firs.eval.queries import read_queries
from firs.index import colour_fusion
from firs.index.model_dir import TrainedModel
from firs.index.whitening import fit_whitening
from firs.pipeline.embed_stage import Prepared, embed_images
from firs.pipeline.partition import catalogue_loader
from firs.search.engine import SearchEngine
from firs.vision import colour_signature
from firs.vision.crops import NEAR_WHITE
from firs.vision.embedder import MEAN, STD

_STD, _MEAN = np.asarray(STD, np.float32)[:, None, None], np.asarray(MEAN, np.float32)[:, None, None]


def to_uint8(prepared: np.ndarray) -> np.ndarray:
    """A prepared CHW picture (the embedder's normalisation) -> HWC uint8."""
    rgb = np.clip(prepared * _STD + _MEAN, 0.0, 1.0)
    return np.round(rgb * 255).astype(np.uint8).transpose(1, 2, 0)


def catalogue_cache(run: Path, engine: SearchEngine) -> dict[str, Any]:
    target = run / "signatures" / "catalogue.npz"
    if not target.is_file():
        products, _ = read_catalog([run / "catalog.csv"], image_roots=[DATA])
        model = TrainedModel.load(run / "model")
        tail = model.backbone_tail(engine.embedder.net)
        pictures: dict[str, np.ndarray] = {}

        def keep(product_id: str, prepared: Prepared) -> None:
            pictures[product_id] = to_uint8(prepared.arrays["fine"])

        load = catalogue_loader(
            engine.embedder, engine.localiser, {p.id: p.categories for p in products}, fine_only=True
        )
        done = embed_images(
            [(p.id, p.image) for p in products],
            engine.embedder,
            load,
            keep=keep,
            desc="catalogue",
            tails={"fine": tail} if tail is not None else None,
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            target,
            ids=np.array(done.ids),
            embeddings=model.catalogue.apply(done.features["fine"]),
            pictures=np.stack([pictures[i] for i in done.ids]),
        )
    with np.load(target) as data:
        return {key: data[key] for key in data.files}


def query_cache(run: Path, name: str, engine: SearchEngine) -> dict[str, Any]:
    target = run / "signatures" / f"queries-{name}.npz"
    if not target.is_file():
        weight = engine.views["fine"].colour_weight
        dim = engine.views["fine"].photo_map.projection.shape[1]
        products, embeddings, pictures, ranks = [], [], [], []
        for query, cut, vector, rank in fine_cuts(engine, read_queries(run / SETS[name]), f"{name} queries"):
            products.append(query.product_id)
            embeddings.append(vector[:dim] * np.sqrt(1 + weight))
            pictures.append(to_uint8(engine.embedder.prepare(cut, engine.view_resize("fine"))))
            ranks.append(rank)
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            target,
            products=np.array(products),
            embeddings=np.stack(embeddings),
            pictures=np.stack(pictures),
            ranks=np.array(ranks),
        )
    with np.load(target) as data:
        return {key: data[key] for key in data.files}


# ---- signatures: (N, 224, 224, 3) uint8 -> (N, D) float32, unit rows (zeros where nothing) ----


def _histograms(codes: np.ndarray, keep: np.ndarray, size: int, root: bool = True) -> np.ndarray:
    out = np.zeros((len(codes), size), np.float32)
    for row in range(len(codes)):
        counts = np.bincount(codes[row][keep[row]], minlength=size).astype(np.float64)
        if counts.sum() > 0:
            share = counts / counts.sum()
            out[row] = np.sqrt(share) if root else share / np.linalg.norm(share)
    return out


def garment(pictures: np.ndarray) -> np.ndarray:
    return (pictures < NEAR_WHITE).any(axis=3)


def rgb_cells(bins: int, root: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    def signature(pictures: np.ndarray) -> np.ndarray:
        cell = (pictures.astype(np.float32) / 255.0 * 0.999 * bins).astype(np.int64)
        codes = (cell[..., 0] * bins + cell[..., 1]) * bins + cell[..., 2]
        return _histograms(codes, garment(pictures), bins**3, root)

    return signature


def lab(pictures: np.ndarray) -> np.ndarray:
    """sRGB uint8 -> CIE Lab (D65), float32 (L 0–100, a and b about −100–100)."""
    c = pictures.astype(np.float32) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]], np.float32)
    xyz /= np.array([0.9505, 1.0, 1.089], np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_cells(l_bins: int, ab_bins: int, ab_range: float = 60.0) -> Callable[[np.ndarray], np.ndarray]:
    def signature(pictures: np.ndarray) -> np.ndarray:  # a block at a time: see blockwise
        values = lab(pictures)
        light = np.clip((values[..., 0] / 100.0 * l_bins).astype(np.int64), 0, l_bins - 1)
        a = np.clip(((values[..., 1] + ab_range) / (2 * ab_range) * ab_bins).astype(np.int64), 0, ab_bins - 1)
        b = np.clip(((values[..., 2] + ab_range) / (2 * ab_range) * ab_bins).astype(np.int64), 0, ab_bins - 1)
        codes = (light * ab_bins + a) * ab_bins + b
        return _histograms(codes, garment(pictures), l_bins * ab_bins * ab_bins)

    return signature


def hsv_cells(hues: int, sats: int, vals: int, greys: int) -> Callable[[np.ndarray], np.ndarray]:
    """Chromatic pixels into hue x saturation x value cells; pixels of low saturation onto a grey
    axis of `greys` cells by value (a hue means nothing for them)."""

    def signature(pictures: np.ndarray) -> np.ndarray:
        c = pictures.astype(np.float32) / 255.0
        high, low = c.max(axis=3), c.min(axis=3)
        chroma = high - low
        saturation = np.where(high > 0, chroma / np.maximum(high, 1e-6), 0)
        r, g, b = c[..., 0], c[..., 1], c[..., 2]
        safe = np.maximum(chroma, 1e-6)
        hue = (
            np.where(high == r, ((g - b) / safe) % 6, np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6.0
        )
        grey = (saturation < 0.15) | (high < 0.12)
        h = np.clip((hue * hues).astype(np.int64), 0, hues - 1)
        s = np.clip(((saturation - 0.15) / 0.85 * sats).astype(np.int64), 0, sats - 1)
        v = np.clip((high * vals).astype(np.int64), 0, vals - 1)
        chromatic_code = (h * sats + s) * vals + v
        grey_code = hues * sats * vals + np.clip((high * greys).astype(np.int64), 0, greys - 1)
        codes = np.where(grey, grey_code, chromatic_code)
        return _histograms(codes, garment(pictures), hues * sats * vals + greys)

    return signature


def banded(inner: Callable[[np.ndarray], np.ndarray], bands: int) -> Callable[[np.ndarray], np.ndarray]:
    """One histogram per horizontal band of the garment's rows, concatenated, unit in all."""

    def signature(pictures: np.ndarray) -> np.ndarray:
        height = pictures.shape[1]
        parts = []
        for band in range(bands):
            part = pictures.copy()
            top, bottom = band * height // bands, (band + 1) * height // bands
            part[:, :top] = 255
            part[:, bottom:] = 255
            parts.append(inner(part))
        joined = np.concatenate(parts, axis=1)
        return joined / np.maximum(np.linalg.norm(joined, axis=1, keepdims=True), 1e-12)

    return signature


def lbp(pictures: np.ndarray, step: int = 2) -> np.ndarray:
    """Local binary patterns of the lightness at half resolution: each garment pixel whose 8
    neighbours (`step` pixels away) are garment too, coded by which of them are lighter by 4/255."""
    out = []
    for begin in range(0, len(pictures), 256):
        block = pictures[begin : begin + 256, ::2, ::2]
        grey = block.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        inside = garment(block)
        centre = grey[:, step:-step, step:-step]
        ok = inside[:, step:-step, step:-step].copy()
        code = np.zeros(centre.shape, np.int64)
        shifts = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
        height, width = grey.shape[1:]
        for bit, (dy, dx) in enumerate(shifts):
            y0, x0 = step + dy * step, step + dx * step
            neighbour = grey[:, y0 : y0 + height - 2 * step, x0 : x0 + width - 2 * step]
            ok &= inside[:, y0 : y0 + height - 2 * step, x0 : x0 + width - 2 * step]
            code |= (neighbour > centre + 4).astype(np.int64) << bit
        out.append(_histograms(code, ok, 256))
    return np.concatenate(out)


def uniform_lbp(hist256: np.ndarray) -> np.ndarray:
    """A square-rooted 256-cell LBP histogram folded into the uniform patterns' 59 cells."""
    cells = colour_signature._lbp_cells()
    out = np.zeros((len(hist256), int(cells.max()) + 1), np.float32)
    np.add.at(out.T, cells, (hist256**2).T)
    return np.sqrt(out)


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rgb6 sqrt": rgb_cells(6),
    "rgb6 plain": rgb_cells(6, root=False),
    "rgb4 sqrt": rgb_cells(4),
    "rgb8 sqrt": rgb_cells(8),
    "lab 4x6x6 ±60": lab_cells(4, 6),
    "lab 5x6x6 ±40": lab_cells(5, 6, 40.0),
    "lab 5x8x8 ±40": lab_cells(5, 8, 40.0),
    "lab 5x7x7 ±30": lab_cells(5, 7, 30.0),
    "lab 5x7x7 ±40": lab_cells(5, 7, 40.0),
    "lab 6x7x7 ±40": lab_cells(6, 7, 40.0),
    "lab 5x9x9 ±50": lab_cells(5, 9, 50.0),
    "hsv 12x3x3+5": hsv_cells(12, 3, 3, 5),
    "hsv 16x3x4+6": hsv_cells(16, 3, 4, 6),
    "rgb6 sqrt, 2 bands": banded(rgb_cells(6), 2),
    "rgb6 sqrt, 3 bands": banded(rgb_cells(6), 3),
}


def blockwise(make: Callable[[np.ndarray], np.ndarray], pictures: np.ndarray) -> np.ndarray:
    """A signature of many pictures, 256 at a time (the intermediates are ~40x the pictures)."""
    return np.concatenate([make(pictures[begin : begin + 256]) for begin in range(0, len(pictures), 256)])


def halves(products: np.ndarray) -> np.ndarray:
    """0 or 1 per query, by its product id: choose on half A, check on half B."""
    return np.array([zlib.crc32(str(p).encode()) % 2 for p in products])


def line(label: str, ranks: list[int | None], half: np.ndarray) -> str:
    parts = []
    for part in (0, 1):
        chosen = [r for r, h in zip(ranks, half, strict=True) if h == part]
        parts.append(f"{recall_at(chosen, 1):.3f} / {recall_at(chosen, 20):.3f} / {mean_average_precision(chosen):.3f}")
    recalls = " / ".join(f"{recall_at(ranks, k):.3f}" for k in (1, 5, 10, 20))
    return f"  {label:<34} A {parts[0]}  B {parts[1]}  all {recalls} / {mean_average_precision(ranks):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("bench/out/dev-s2"))
    parser.add_argument("--weights", type=float, nargs="*", default=[0.3, 0.4, 0.5, 0.6])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help="rgb6 sqrt is always scored")
    parser.add_argument("--pattern-with", default="lab 6x7x7 ±40", help="the colour cells the pattern joins")
    parser.add_argument("--second-model", type=Path, help="also score the mean cosine of RUN/model and this one")
    parser.add_argument(
        "--untrained-weights", type=float, nargs="*", default=[], help="also score these weights with no model"
    )
    parser.add_argument("--pattern", type=float, nargs="*", default=[0.2, 0.3, 0.4])
    parser.add_argument(
        "--product-weights",
        type=float,
        nargs="*",
        default=[colour_fusion.DEFAULT_WEIGHT],
        help="the product's own signature at these weights",
    )
    parser.add_argument("--product-only", action="store_true", help="score only the product's own signature")
    args = parser.parse_args()
    engine = SearchEngine(args.run / "index-model")
    catalogue = catalogue_cache(args.run, engine)
    sets = {name: query_cache(args.run, name, engine) for name in SETS}
    row_of = {str(pid): row for row, pid in enumerate(catalogue["ids"])}
    targets = {name: np.array([row_of[str(p)] for p in data["products"]]) for name, data in sets.items()}
    half = {name: halves(data["products"]) for name, data in sets.items()}
    cosine = {name: data["embeddings"] @ catalogue["embeddings"].T for name, data in sets.items()}
    print(f"{len(catalogue['ids'])} products; fine, exact search; halves A and B: R@1 / R@20 / mAP")
    for name, data in sets.items():
        print(f" {name} ({len(data['products'])} queries, {int((half[name] == 0).sum())} in A)")
        print(line("the index's own fine search", [int(r) or None for r in data["ranks"]], half[name]))
        print(line("embedding alone", ranks_of(cosine[name], targets[name]), half[name]))
    for variant in [] if args.product_only else dict.fromkeys(["rgb6 sqrt", *args.variants]):
        make = VARIANTS[variant]
        cat = blockwise(make, catalogue["pictures"])
        print(f"== {variant} ({cat.shape[1]} cells)")
        for name, data in sets.items():
            dots = blockwise(make, data["pictures"]) @ cat.T
            for w in args.weights:
                print(line(f"{name}, w {w:g}", ranks_of(cosine[name] + w * dots, targets[name]), half[name]))
    if not args.product_only:
        patterns(args.pattern_with, args.pattern, catalogue, sets, cosine, targets, half)
    weight = colour_fusion.DEFAULT_WEIGHT
    print(f"== the product's signature ({colour_signature.DEFAULT_KIND}, firs.vision.colour_signature) at w")
    product_cat = blockwise(product_signature, catalogue["pictures"])
    for name, data in sets.items():
        dots = blockwise(product_signature, data["pictures"]) @ product_cat.T
        for w in args.product_weights:
            print(line(f"{name}, w {w:g}", ranks_of(cosine[name] + w * dots, targets[name]), half[name]))
    if args.untrained_weights:
        untrained(engine, catalogue, sets, targets, half, args.untrained_weights, product_cat)
    if args.second_model is None:
        return
    print(f"== RUN/model and {args.second_model}, their cosines' mean, with the product's signature at w {weight}")
    second = TrainedModel.load(args.second_model)
    tail = second.backbone_tail(engine.embedder.net)
    second_cat = second.catalogue.apply(pooled_features(engine, tail, catalogue["pictures"]))
    for name, data in sets.items():
        second_q = second.query.apply(pooled_features(engine, tail, data["pictures"]))
        dots = blockwise(product_signature, data["pictures"]) @ product_cat.T
        alone = second_q @ second_cat.T
        print(line(f"{name}, the second model", ranks_of(alone + weight * dots, targets[name]), half[name]))
        both = (cosine[name] + alone) / 2 + weight * dots
        print(line(f"{name}, both", ranks_of(both, targets[name]), half[name]))


def patterns(
    pattern_with: str,
    weights: list[float],
    catalogue: dict[str, Any],
    sets: dict[str, dict[str, Any]],
    cosine: dict[str, np.ndarray],
    targets: dict[str, np.ndarray],
    half: dict[str, np.ndarray],
) -> None:
    """The colour cells `pattern_with` at w 0.3 with a pattern (LBP) at each weight."""
    colour = VARIANTS[pattern_with]
    colour_cat = blockwise(colour, catalogue["pictures"])
    pattern_cat = lbp(catalogue["pictures"])
    print(f"== {pattern_with} at w 0.3 and a pattern (local binary patterns) at weight p")
    for name, data in sets.items():
        colour_dots = blockwise(colour, data["pictures"]) @ colour_cat.T
        pattern = lbp(data["pictures"])
        for cells, q, c in (
            ("256", pattern, pattern_cat),
            ("uniform 59", uniform_lbp(pattern), uniform_lbp(pattern_cat)),
        ):
            for p in weights:
                fused = cosine[name] + 0.3 * colour_dots + p * (q @ c.T)
                print(line(f"{name}, {cells} cells, p {p:g}", ranks_of(fused, targets[name]), half[name]))


def untrained(
    engine: SearchEngine,
    catalogue: dict[str, Any],
    sets: dict[str, dict[str, Any]],
    targets: dict[str, np.ndarray],
    half: dict[str, np.ndarray],
    weights: list[float],
    product_cat: np.ndarray,
) -> None:
    """What a plain `firs build` searches with: the ImageNet network, PCA-whitened to 1024
    dimensions on the catalogue, with the product's signature at each weight."""
    raw = pooled_features(engine, None, catalogue["pictures"])
    whitening = fit_whitening(raw, 1024)
    cat = whitening.apply(raw)
    print("== no model (ImageNet features, PCA-whitening 1024), the product's signature at w")
    for name, data in sets.items():
        cosine = whitening.apply(pooled_features(engine, None, data["pictures"])) @ cat.T
        dots = blockwise(product_signature, data["pictures"]) @ product_cat.T
        for w in weights:
            print(line(f"{name}, w {w:g}", ranks_of(cosine + w * dots, targets[name]), half[name]))


def normalised(pictures: np.ndarray) -> np.ndarray:
    """HWC uint8 pictures -> prepared NCHW (the embedder's normalisation)."""
    prepared = (pictures.astype(np.float32) / 255 - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(prepared.transpose(0, 3, 1, 2))


def product_signature(pictures: np.ndarray) -> np.ndarray:
    """The product's own default signature of HWC uint8 pictures."""
    return colour_signature.signatures(normalised(pictures))


def pooled_features(engine: SearchEngine, tail: Any, pictures: np.ndarray) -> np.ndarray:
    """The network's pooled features of HWC uint8 pictures, through a model's tuned tail."""
    blocks = [
        engine.embedder.forward(normalised(pictures[b : b + 64]), tail, False)[0] for b in range(0, len(pictures), 64)
    ]
    return np.concatenate(blocks)


if __name__ == "__main__":
    main()

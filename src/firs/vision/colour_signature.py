"""The garment's signature beside its embedding: which colours its pixels have, and what texture.

ImageNet features confuse a navy t-shirt with a black top; a histogram of the garment's own
pixels does not. Each histogram is of the prepared picture's non-white pixels (the fine view
puts the item on white), square-rooted so that the dot product of two is their Bhattacharyya
coefficient: 1 for the same distribution, 0 for disjoint ones. Two kinds, named in the index's
manifest (`kind`):
- "lab-lbp" (the default): a CIE Lab colour histogram (LAB_CELLS: 6 lightness cells, 7 × 7 for
  a and b within ±40, an odd count so that greys sit in a cell's middle rather than on a border)
  and a texture histogram (the 58 uniform local binary patterns of the lightness at half
  resolution, and one cell for the rest), each half of the signature's weight. On the dev set
  it lifted street R@1 by .02 over "rgb6" at the same fused weight of the whole
  (bench/colour_variants.py, docs/architecture.md "Colour and pattern, again").
- "rgb6": a 6³-cell RGB histogram alone — indexes built before "lab-lbp" keep it, and their
  searches and `firs add` compute it.
Unit length, or all zeros for a picture with no non-white pixel ("lab-lbp": each half √½ long,
the pattern half zero where no garment pixel has garment all around it). Hard cells: sharing each pixel
among the 8 cells around it (trilinear) was steadier under a change of light on drawn garments,
but on the dev set it scored no better (bench/colour_signature_dev.py) and costs 8x the time.
"""

from __future__ import annotations

import functools

import numpy as np

from .crops import NEAR_WHITE
from .embedder import MEAN, STD

DEFAULT_KIND = "lab-lbp"
LEGACY_KIND = "rgb6"  # what an index whose manifest names no kind holds
BINS = 6  # "rgb6": cells per channel
SIZE = BINS**3
LAB_CELLS = (6, 7, 7)  # lightness, a, b
LAB_AB_RANGE = 40.0  # a and b cells cover ±this; beyond it, the outer cells
LAB_SIZE = LAB_CELLS[0] * LAB_CELLS[1] * LAB_CELLS[2]
LBP_STEP = 2  # neighbours this many pixels away, at half resolution
LBP_CONTRAST = 4 / 255  # a neighbour counts as lighter by at least this
_UNIFORM = [c for c in range(256) if sum(((c >> i) ^ (c >> (i + 1) % 8)) & 1 for i in range(8)) <= 2]
LBP_SIZE = len(_UNIFORM) + 1
_LUT_BITS = 7  # the Lab cell of every RGB colour, looked up at 7 bits a channel


_STD, _MEAN = np.asarray(STD, np.float32), np.asarray(MEAN, np.float32)


def _rgb(batch: np.ndarray) -> np.ndarray:
    """Prepared NCHW pictures (the embedder's normalisation) -> NHWC RGB in [0, 1)."""
    return np.clip(batch.transpose(0, 2, 3, 1) * _STD + _MEAN, 0.0, 0.999)


def garment_pixels(batch: np.ndarray) -> list[np.ndarray]:
    """Per prepared NCHW picture (the embedder's normalisation), its non-white pixels, RGB in [0, 1)."""
    return [pixels[(pixels < NEAR_WHITE / 255).any(axis=1)] for pixels in _rgb(batch).reshape(len(batch), -1, 3)]


def signature(counts: np.ndarray) -> np.ndarray:
    """Cell counts -> the unit square-rooted histogram (zeros when there is nothing)."""
    total = counts.sum()
    return np.sqrt(counts / total).astype(np.float32) if total > 0 else np.zeros(len(counts), np.float32)


def colour_signatures(batch: np.ndarray) -> np.ndarray:
    """Prepared NCHW pictures (the embedder's normalisation) -> (N, SIZE) float32.

    The same numbers as binning `garment_pixels`, a channel at a time into one cell code per
    pixel: 0.28 against 0.71 ms for a 224 px picture (tests/test_colour.py checks the numbers)."""
    count, _, height, width = batch.shape
    out = np.zeros((count, SIZE), np.float32)
    value = np.empty((height, width), np.float32)
    for row in range(count):
        code = np.zeros((height, width), np.uint8)
        coloured = np.zeros((height, width), bool)
        for channel in range(3):
            np.multiply(batch[row, channel], _STD[channel], out=value)
            value += _MEAN[channel]
            np.clip(value, 0.0, 0.999, out=value)
            coloured |= value < NEAR_WHITE / 255
            value *= BINS
            code *= BINS
            code += value.astype(np.uint8)
        out[row] = signature(np.bincount(code[coloured], minlength=SIZE))
    return out


def size(kind: str) -> int:
    """The length of a signature of this kind."""
    return {LEGACY_KIND: SIZE, DEFAULT_KIND: LAB_SIZE + LBP_SIZE}[check_kind(kind)]


def check_kind(kind: str) -> str:
    if kind not in (DEFAULT_KIND, LEGACY_KIND):
        raise ValueError(f"unknown garment signature kind {kind!r} (known: {DEFAULT_KIND}, {LEGACY_KIND})")
    return kind


def describe(kind: str) -> str:
    if check_kind(kind) == LEGACY_KIND:
        return f"square-rooted {BINS}x{BINS}x{BINS} RGB histogram of the prepared picture's non-white pixels"
    light, a, b = LAB_CELLS
    return (
        f"square-rooted CIE Lab histogram ({light}x{a}x{b} cells, a and b within ±{LAB_AB_RANGE:g}) and "
        f"square-rooted histogram of uniform local binary patterns of the lightness at half resolution "
        f"({LBP_SIZE} cells), of the prepared picture's non-white pixels, each weighted by √½"
    )


def signatures(batch: np.ndarray, kind: str = DEFAULT_KIND) -> np.ndarray:
    """Prepared NCHW pictures (the embedder's normalisation) -> (N, size(kind)) float32."""
    if check_kind(kind) == LEGACY_KIND:
        return colour_signatures(batch)
    out = np.zeros((len(batch), LAB_SIZE + LBP_SIZE), np.float32)
    half = np.float32(np.sqrt(0.5))
    lut = _lab_lut()  # built on the first call, even of a blank picture: what warming up pays
    for row, rgb in enumerate(_rgb(batch)):
        coloured = (rgb < NEAR_WHITE / 255).any(axis=2)
        if not coloured.any():
            continue
        levels = (rgb * (1 << _LUT_BITS)).astype(np.intp)
        codes = lut[(levels[..., 0] << 2 * _LUT_BITS) | (levels[..., 1] << _LUT_BITS) | levels[..., 2]]
        out[row, :LAB_SIZE] = signature(np.bincount(codes[coloured], minlength=LAB_SIZE)) * half
        out[row, LAB_SIZE:] = signature(_pattern_counts(rgb[::2, ::2], coloured[::2, ::2])) * half
    return out


def _pattern_counts(rgb: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Uniform-LBP cell counts over the pixels whose 8 neighbours are garment too."""
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    step, (height, width) = LBP_STEP, grey.shape
    inner = (slice(step, height - step), slice(step, width - step))
    centre, valid = grey[inner] + LBP_CONTRAST, inside[inner].copy()
    code = np.zeros(centre.shape, np.uint8)
    around = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    for bit, (dy, dx) in enumerate(around):
        shifted = (
            slice(step + dy * step, height - step + dy * step),
            slice(step + dx * step, width - step + dx * step),
        )
        valid &= inside[shifted]
        code |= (grey[shifted] > centre).astype(np.uint8) << bit
    return np.bincount(_lbp_cells()[code[valid]], minlength=LBP_SIZE)


@functools.cache
def _lbp_cells() -> np.ndarray:
    """LBP code -> its uniform pattern's cell, or the last cell for every other code."""
    table = np.full(256, len(_UNIFORM), np.intp)
    table[_UNIFORM] = np.arange(len(_UNIFORM))
    return table


@functools.cache
def _lab_lut() -> np.ndarray:
    """Lab cell of each RGB colour quantised to _LUT_BITS a channel (the level's middle), sRGB/D65.
    Made one red level at a time: all 2 M colours at once took ~340 MB of float64 temporaries,
    which the tuned allocator (runtime.tune_allocator) then kept resident in every process."""
    levels = (np.arange(1 << _LUT_BITS, dtype=np.float64) + 0.5) / (1 << _LUT_BITS)
    green_blue = np.stack(np.meshgrid(levels, levels, indexing="ij"), axis=-1).reshape(-1, 2)
    return np.concatenate([_lab_cells(np.column_stack([np.full(len(green_blue), red), green_blue])) for red in levels])


def _lab_cells(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) RGB in [0, 1] -> each colour's Lab cell."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]])
    xyz = linear @ to_xyz / np.array([0.9505, 1.0, 1.089])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    lightness, a, b = 116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])
    light_cells, a_cells, b_cells = LAB_CELLS

    def cell(value: np.ndarray, low: float, high: float, count: int) -> np.ndarray:
        return np.clip(((value - low) / (high - low) * count).astype(np.intp), 0, count - 1)

    light = cell(lightness, 0.0, 100.0, light_cells)
    a_cell = cell(a, -LAB_AB_RANGE, LAB_AB_RANGE, a_cells)
    b_cell = cell(b, -LAB_AB_RANGE, LAB_AB_RANGE, b_cells)
    return ((light * a_cells + a_cell) * b_cells + b_cell).astype(np.uint16)

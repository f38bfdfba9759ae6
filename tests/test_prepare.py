"""Preparing a picture for the embedder: the fast resampling against Pillow's, every resize
policy, odd sizes and modes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from firs.errors import FirsError
from firs.vision.embedder import MEAN, STD, prepare


def _photo(width: int = 640, height: int = 480) -> Image.Image:
    """Gradients, stripes and shapes: edges and fine detail that resampling can get wrong."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, ((x // 3 + y // 5) % 2) * 200], axis=-1)
    image = Image.fromarray(pixels.astype(np.uint8))
    if min(width, height) < 100:
        return image
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, width // 2, height // 2), fill=(250, 30, 40))
    draw.rectangle((width // 2, height // 3, width - 20, height - 30), fill=(20, 40, 160))
    return image


def _grey_levels(array: np.ndarray) -> np.ndarray:
    """Normalised CHW back to 0-255 grey levels."""
    return (array * np.asarray(STD)[:, None, None] + np.asarray(MEAN)[:, None, None]) * 255


@pytest.mark.parametrize("resize", ["crop", "pad", "squash"])
@pytest.mark.parametrize("size", [(640, 480), (1000, 333), (150, 260)])
def test_fast_resampling_stays_close_to_pillows(resize: str, size: tuple[int, int]) -> None:
    image = _photo(*size)
    fast, pillow = prepare(image, 224, resize, "area-linear"), prepare(image, 224, resize, "pil-bilinear")
    assert fast.shape == pillow.shape == (3, 224, 224) and fast.dtype == np.float32
    gap = np.abs(_grey_levels(fast) - _grey_levels(pillow))
    # A checkerboard of 3 x 5 pixel cells is where two antialiasing filters differ most (worst
    # here: 333 rows squashed to 224, bilinear after no whole box step, 5.2 grey levels); on
    # natural photos the mean gap is under one (bench/prepare_speed.py).
    assert gap.mean() < 6.0


def test_pillow_resampling_is_what_it_always_was() -> None:
    image = _photo()
    scale = 224 / 480
    resized = image.resize((round(640 * scale), 224), Image.BILINEAR, reducing_gap=2.0)
    left = (resized.width - 224) // 2
    want = (np.asarray(resized.crop((left, 0, left + 224, 224)), np.float32) / 255 - MEAN) / STD
    got = prepare(image, 224, "crop", "pil-bilinear")
    assert np.abs(got - want.transpose(2, 0, 1)).max() < 1e-5


def test_padding_is_white_and_the_picture_centred() -> None:
    tall = Image.new("RGB", (100, 400), (0, 0, 0))
    array = _grey_levels(prepare(tall, 224, "pad"))
    assert np.allclose(array[:, :, :40], 255, atol=0.01) and np.allclose(array[:, :, -40:], 255, atol=0.01)
    assert np.allclose(array[:, :, 112], 0, atol=0.01)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_any_image_mode_is_prepared_as_rgb(mode: str) -> None:
    image = _photo(300, 200).convert(mode)
    assert prepare(image, 224, "crop").shape == (3, 224, 224)


@pytest.mark.parametrize("size", [(1, 1), (1, 500), (500, 1), (224, 224), (448, 448), (4001, 3000)])
def test_odd_and_exact_sizes(size: tuple[int, int]) -> None:
    image = _photo(*size)
    for resize in ("crop", "pad", "squash"):
        array = prepare(image, 224, resize)
        assert array.shape == (3, 224, 224) and np.isfinite(array).all()
    # An exact multiple is a pure box average: 448 -> 224 averages each 2 x 2 block.
    if size == (448, 448):
        blocks = np.asarray(image, np.float64).reshape(224, 2, 224, 2, 3).mean(axis=(1, 3))
        got = _grey_levels(prepare(image, 224, "squash")).transpose(1, 2, 0)
        assert np.abs(got - blocks).max() <= 0.51


def test_unknown_resampling_is_refused() -> None:
    with pytest.raises(FirsError, match="unknown resampling 'lanczos'"):
        prepare(_photo(), 224, "crop", "lanczos")

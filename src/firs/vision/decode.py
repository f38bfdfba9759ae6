"""Safe image decoding: refuse what is not a sane image, normalise the rest to RGB.

Memory is bounded per image: the compressed bytes are capped, JPEGs are decoded at a
reduced scale, the raster a decoder would allocate is estimated from the header and
refused over a budget, and every decoded picture is reduced to at most WORK_SIDE pixels on
its long side before any conversion. The original size (after EXIF orientation) is kept,
so coordinates found on the reduced picture can be reported in the uploaded image's pixels.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image

from ..errors import ImageError
from .resample import fitted, resized

# HEIC/HEIF (iPhone photos) through libheif. Decoding applies the file's irot/imir turns and
# resets the EXIF orientation to 1, so the EXIF turn below never turns such a photo twice.
# Thumbnails, depth and auxiliary images are never used: not parsed.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

MAX_BYTES = 32 * 1024 * 1024
MAX_SIDE = 12_000
MAX_PIXELS = 50_000_000
MIN_SIDE = 8
MAX_ASPECT = 20  # a strip thinner than 1:20 is no photo of a garment
# Peak memory one decode may take, estimated from the header (after JPEG's reduced
# decoding) with the bytes per pixel measured for each mode (decoder buffers and the
# conversion to RGB included; bench/burst_memory.py); over it, the image is refused.
MAX_DECODE_BYTES = 256 * 1024 * 1024
WORK_SIDE = 1024  # long side of every decoded picture: a search uses at most 960 px
FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "HEIF"}  # PIL's names; HEIF holds HEIC
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_UPRIGHT = {  # EXIF orientation -> the turn that shows the picture upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Peak bytes per pixel of decoding and converting to RGB, by PIL mode (measured, rounded up).
_PEAK_BYTES_PER_PIXEL = {"L": 2, "RGB": 5, "YCbCr": 5, "RGBA": 9, "LA": 9, "PA": 9, "P": 9, "1": 9, "CMYK": 9}
# HEIF's own: libheif's planes and RGB copy live beside Pillow's picture (measured with
# bench/burst_memory.py's decode child: 4032x3024 and 5712x4284 RGB 8.0, 4032x3024 RGBA 22.1).
_HEIF_PEAK_BYTES_PER_PIXEL = {"RGB": 9, "RGBA": 24}


@dataclass
class Photo:
    """A decoded picture, reduced to at most WORK_SIDE on its long side, and the size of the
    original (after EXIF orientation) whose pixel coordinates answers are given in."""

    image: Image.Image
    size: tuple[int, int]

    def to_original(self, box: tuple[int, ...] | list[int]) -> list[int]:
        """A box (x0, y0, x1, y1) on `image` in the original's pixels, clipped to it."""
        sx, sy = self.size[0] / self.image.width, self.size[1] / self.image.height
        x0, y0, x1, y1 = box
        width, height = self.size
        return [
            min(width, max(0, round(x0 * sx))),
            min(height, max(0, round(y0 * sy))),
            min(width, max(0, round(x1 * sx))),
            min(height, max(0, round(y1 * sy))),
        ]


def check_file(path: str | Path) -> None:
    """Refuse a missing, non-regular, empty or oversized file without reading it."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    if not path.is_file():
        raise ImageError(f"{path}: not a regular file")
    if info.st_size == 0:
        raise ImageError(f"{path}: empty file")
    if info.st_size > MAX_BYTES:
        raise ImageError(f"{path}: {info.st_size} bytes is over the {MAX_BYTES}-byte limit")


def read_bytes(path: str | Path) -> bytes:
    """The bytes of an image file, refusing huge files before reading them."""
    path = Path(path)
    check_file(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise ImageError(f"{path}: over the {MAX_BYTES}-byte limit")
    return data


def _peak_bytes_per_pixel(mode: str, image_format: str | None = None) -> int:
    if image_format == "HEIF":
        return _HEIF_PEAK_BYTES_PER_PIXEL.get(mode, 24)
    if mode.startswith(("I", "F")):  # I;16*, I, F: wide integers or floats, then scaled down
        return 12
    return _PEAK_BYTES_PER_PIXEL.get(mode, 9)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is flattened onto white (the shop background)."""
    mode = image.mode
    if mode.startswith(("I", "F")):
        array = np.asarray(image)
        if mode == "F":
            low, high = float(array.min()), float(array.max())
            array = (array.astype(np.float32) - low) * (255.0 / (high - low or 1.0))
        elif array.max() > 255:
            # 16-bit data: scale the full range down rather than clip at 255.
            array = array >> 8 if array.dtype == np.uint16 else array.astype(np.float32) / 257.0
        gray = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "L")
        return gray.convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")


def _reduce(image: Image.Image, side: int) -> Image.Image:
    """At most `side` pixels on the long side: an integer box reduction first (cheap, any
    mode that supports it), then a filtered resize of the already small picture."""
    factor = max(image.size) // (2 * side)
    if factor >= 2:
        if image.mode in ("P", "1") or image.mode.startswith("I;16"):
            image = _to_rgb(image)
        image = image.reduce(factor)
    image = _to_rgb(image)
    if max(image.size) > side:
        image = Image.fromarray(resized(image, *fitted(image.size, side)))
    return image


_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
# An ISO-BMFF file's major brand (bytes 8-12, after the `ftyp` box type): the brands
# pillow-heif opens. AVIF (brand avif) is not among them: no AV1 decoder in its wheels.
_HEIF_BRANDS = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"heim": "image/heic",
    b"heis": "image/heic",
    b"hevc": "image/heic-sequence",
    b"hevx": "image/heic-sequence",
    b"hevm": "image/heic-sequence",
    b"hevs": "image/heic-sequence",
    b"mif1": "image/heif",
    b"msf1": "image/heif-sequence",
}


def sniff_media_type(data: bytes) -> str | None:
    """The image type the bytes themselves declare (not a file name or a client's word), or None."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return _HEIF_BRANDS.get(data[8:12])
    return next((media for magic, media in _SIGNATURES if data.startswith(magic)), None)


def _open(data: bytes, name: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: refused as a decompression bomb ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, TypeError, EOFError) as exc:
        raise ImageError(f"{name}: cannot open image ({str(exc).strip()})") from None


def _check_size(image: Image.Image, name: str) -> None:
    width, height = image.size
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageError(
            f"{name}: {width}x{height} pixels is too large (limit {MAX_SIDE} per side, {MAX_PIXELS} in all)"
        )
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(f"{name}: {width}x{height} pixels is too small (minimum {MIN_SIDE})")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(f"{name}: {width}x{height} pixels is too thin (sides differ by more than {MAX_ASPECT}x)")


# What decoders raise on damaged data; RuntimeError is libheif's (a security limit hit, say),
# whose messages end with a newline.
_DAMAGED = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    EOFError,
    IndexError,
    KeyError,
    ZeroDivisionError,
    RuntimeError,
)


def decode_photo(data: bytes, name: str = "image", side: int = WORK_SIDE, cover: int | None = None) -> Photo:
    """Decode bytes into an upright 8-bit RGB picture of at most `side` pixels on its long
    side, with the original's size; or raise ImageError naming the problem. With `cover`, it is
    sized by its short side instead: the least that keeps `cover` pixels there (a whole photo for
    the embedder's square), its long side at most WORK_SIDE."""
    if not data:
        raise ImageError(f"{name}: empty file")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name}: {len(data)} bytes is over the {MAX_BYTES}-byte limit")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _open(data, name)
        try:
            if image.format not in FORMATS:
                raise ImageError(f"{name}: unsupported image format {image.format}")
            _check_size(image, name)
            width, height = image.size
            if cover is not None:
                side = min(WORK_SIDE, math.ceil(cover * max(width, height) / min(width, height)))
            if image.format in ("JPEG", "MPO"):
                # Decoded at 1/2, 1/4 or 1/8 scale when that still covers the long side `side`
                # (asked as the fitted box, not a square: a 4032x3024 photo at 384 takes 1/8).
                image.draft("RGB", fitted(image.size, side))
            peak = image.size[0] * image.size[1] * _peak_bytes_per_pixel(image.mode, image.format)
            if peak > MAX_DECODE_BYTES:
                raise ImageError(
                    f"{name}: {width}x{height} {image.mode} pixels would need about {peak >> 20} MB to decode "
                    f"(limit {MAX_DECODE_BYTES >> 20} MB)"
                )
            expected = image.size
            image.load()
            if image.size != expected:  # HEIF: a clean-aperture crop may decode to another size than announced
                _check_size(image, name)
                width, height = image.size
            # Read after load (a PNG's eXIf chunk may follow the pixels) and before the
            # conversions, some of which make a new image without the EXIF data.
            orientation = image.getexif().get(0x0112)
            original = (height, width) if orientation in _TRANSPOSED else (width, height)
            image = _reduce(image, side)
            if orientation in _UPRIGHT:
                image = image.transpose(_UPRIGHT[orientation])
            return Photo(image, original)
        except ImageError:
            raise
        except Image.DecompressionBombWarning as exc:
            raise ImageError(f"{name}: refused as a decompression bomb ({exc})") from None
        except _DAMAGED as exc:
            raise ImageError(
                f"{name}: damaged or truncated image ({exc.__class__.__name__}: {str(exc).strip()})"
            ) from None
        except MemoryError:
            raise ImageError(f"{name}: too large to decode") from None


def decode_image(data: bytes, name: str = "image") -> Image.Image:
    """Decode bytes into an upright 8-bit RGB image (long side at most WORK_SIDE)."""
    return decode_photo(data, name).image


def load_image(path: str | Path) -> Image.Image:
    """Read and decode an image file."""
    return decode_image(read_bytes(path), str(path))

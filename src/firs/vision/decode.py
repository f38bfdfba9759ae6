"""Safe image decoding: refuse what is not a sane image, normalise the rest to RGB."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import ImageError

MAX_BYTES = 32 * 1024 * 1024
MAX_SIDE = 12_000
MAX_PIXELS = 50_000_000
MIN_SIDE = 8
FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"}


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
    if info.st_size == 0:
        raise ImageError(f"{path}: empty file")
    if info.st_size > MAX_BYTES:
        raise ImageError(f"{path}: {info.st_size} bytes is over the {MAX_BYTES}-byte limit")


def read_bytes(path: str | Path) -> bytes:
    """The bytes of an image file, refusing huge files before reading them."""
    path = Path(path)
    check_file(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is flattened onto white (the shop background)."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if mode == "F":
            low, high = float(array.min()), float(array.max())
            array = (array - low) / (high - low or 1.0) * 255.0
        else:
            # 16-bit data: scale the full range down rather than clip at 255.
            array = array / 257.0 if array.max() > 255 else array
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


_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def sniff_media_type(data: bytes) -> str | None:
    """The image type the bytes themselves declare (not a file name or a client's word), or None."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((media for magic, media in _SIGNATURES if data.startswith(magic)), None)


def decode_image(data: bytes, name: str = "image") -> Image.Image:
    """Decode bytes into an upright 8-bit RGB image, or raise ImageError naming the problem."""
    if not data:
        raise ImageError(f"{name}: empty file")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name}: {len(data)} bytes is over the {MAX_BYTES}-byte limit")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageError(f"{name}: refused as a decompression bomb ({exc})") from None
        except Image.DecompressionBombWarning as exc:
            raise ImageError(f"{name}: refused as a decompression bomb ({exc})") from None
        except Image.UnidentifiedImageError:
            raise ImageError(f"{name}: not an image (unrecognised format)") from None
        except OSError as exc:
            raise ImageError(f"{name}: cannot open image ({exc})") from None
        if image.format not in FORMATS:
            raise ImageError(f"{name}: unsupported image format {image.format}")
        width, height = image.size
        if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
            raise ImageError(
                f"{name}: {width}x{height} pixels is too large (limit {MAX_SIDE} per side, {MAX_PIXELS} in all)"
            )
        if width < MIN_SIDE or height < MIN_SIDE:
            raise ImageError(f"{name}: {width}x{height} pixels is too small (minimum {MIN_SIDE})")
        try:
            if image.format == "JPEG":
                image.draft("RGB", (1024, 1024))  # decode big JPEGs at a reduced scale: much faster
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return _to_rgb(image)
        except Image.DecompressionBombWarning as exc:
            raise ImageError(f"{name}: refused as a decompression bomb ({exc})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{name}: damaged or truncated image ({exc})") from None


def load_image(path: str | Path) -> Image.Image:
    """Read and decode an image file."""
    return decode_image(read_bytes(path), str(path))

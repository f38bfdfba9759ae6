"""A corpus of malformed and awkward images, generated (nothing stored): what phones, broken
uploads and attackers send. `corpus()` gives (category, name, bytes) triples."""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Iterator

import numpy as np
from PIL import Image

Entry = tuple[str, str, bytes]


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _scene(size: tuple[int, int] = (160, 200), seed: int = 0) -> Image.Image:
    """A small picture with structure (not flat), so decoders and models have work to do."""
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return Image.fromarray(array).resize(size, Image.BILINEAR)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_raw(width: int, height: int, depth: int = 8, colour: int = 2, rows: bytes | None = None) -> bytes:
    """A PNG written by hand: any header, even ones PIL refuses to write (0 px, 16-bit RGB)."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour, 1)
    if rows is None:
        row = b"\0" + b"\x80" * max(0, (width * channels * depth + 7) // 8)
        rows = row * max(0, min(height, 2000))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims another size."""
    data = bytearray(_save(_scene((64, 64)), "JPEG"))
    at = data.find(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _valid() -> dict[str, bytes]:
    scene = _scene()
    return {
        "jpeg": _save(scene, "JPEG", quality=85),
        "png": _save(scene, "PNG"),
        "gif": _save(scene.convert("P"), "GIF"),
        "webp": _save(scene, "WEBP"),
        "bmp": _save(scene, "BMP"),
        "tiff": _save(scene, "TIFF"),
    }


def _truncated(valid: dict[str, bytes]) -> Iterator[Entry]:
    for fmt, data in valid.items():
        for fraction in (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99):
            cut = max(1, int(len(data) * fraction))
            yield "truncated", f"{fmt}-{fraction:.2f}", data[:cut]
        for cut in (2, 3, 4, 8, 16, 32):
            yield "truncated", f"{fmt}-{cut}B", data[:cut]


def _wrong_signatures(valid: dict[str, bytes]) -> Iterator[Entry]:
    body = valid["png"][8:]
    for name, magic in (
        ("jpeg-magic-png-body", b"\xff\xd8\xff"),
        ("gif-magic-png-body", b"GIF89a"),
        ("bmp-magic-png-body", b"BM"),
        ("tiff-magic-png-body", b"II*\x00"),
        ("tiff-be-magic-png-body", b"MM\x00*"),
    ):
        yield "wrong signature", name, magic + body
    yield "wrong signature", "png-magic-jpeg-body", b"\x89PNG\r\n\x1a\n" + valid["jpeg"][3:]
    yield "wrong signature", "webp-riff-junk", b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 40
    yield "wrong signature", "jpeg-magic-zeros", b"\xff\xd8\xff" + b"\x00" * 500
    yield "wrong signature", "bmp-header-absurd", b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + b"\xff" * 40
    yield "wrong signature", "gif-header-only", b"GIF89a\x10\x00\x10\x00\x00\x00\x00"


def _not_images() -> Iterator[Entry]:
    texts = {
        "html": b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
        "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect width="9"/></svg>',
        "text": b"just some words, not a picture\n" * 20,
        "json": b'{"image": "/etc/passwd"}',
        "pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF",
        "zip": b"PK\x03\x04" + b"\x00" * 100,
        "elf": b"\x7fELF\x02\x01\x01" + b"\x00" * 100,
        "utf16": "caf\u00e9 \u2603".encode("utf-16"),
        "nul": b"\x00" * 1024,
        "one-byte": b"\xff",
    }
    for name, data in texts.items():
        yield "not an image", name, data
    yield "empty", "empty", b""


def _bombs() -> Iterator[Entry]:
    yield "bomb", "png-1bit-20000", _save(Image.new("1", (20_000, 20_000)), "PNG")
    yield "bomb", "png-rgba-7000", png_raw(7000, 7000, 8, 6)
    yield "bomb", "png-16bit-gray-7000", png_raw(7000, 7000, 16, 0)
    yield "bomb", "png-16bit-rgb-7000", png_raw(7000, 7000, 16, 2)
    yield "bomb", "png-palette-10000", _save(Image.new("P", (10_000, 5_000)), "PNG")
    yield "bomb", "gif-12000", _save(Image.new("P", (12_000, 12_000)), "GIF")
    yield "bomb", "jpeg-claims-60000", _jpeg_with_size(60_000, 60_000)
    yield "bomb", "jpeg-claims-11000x11000", _jpeg_with_size(11_000, 11_000)
    yield (
        "bomb",
        "tiff-claims-huge",
        _save(Image.new("L", (64, 64)), "TIFF").replace(
            struct.pack("<HHIH", 256, 3, 1, 64), struct.pack("<HHIH", 256, 3, 1, 60000), 1
        ),
    )


def _dimensions() -> Iterator[Entry]:
    for width, height in ((0, 10), (10, 0), (0, 0), (1, 1), (2, 2), (7, 7), (8, 8), (8, 11_000), (11_000, 8)):
        yield "dimensions", f"png-{width}x{height}", png_raw(width, height)
    yield "dimensions", "png-claims-2^31", png_raw(2**31 - 1, 1, rows=b"\0\0\0\0")
    yield "dimensions", "jpeg-2x2", _save(Image.new("RGB", (2, 2), "red"), "JPEG")
    yield "dimensions", "jpeg-4000x10", _save(Image.new("RGB", (4000, 10), "red"), "JPEG")
    yield "dimensions", "jpeg-claims-0x0", _jpeg_with_size(0, 0)
    yield "dimensions", "gif-1x1", _save(Image.new("P", (1, 1)), "GIF")


def _modes() -> Iterator[Entry]:
    scene = _scene()
    yield "mode", "jpeg-cmyk", _save(scene.convert("CMYK"), "JPEG")
    yield "mode", "tiff-cmyk", _save(scene.convert("CMYK"), "TIFF")
    yield "mode", "png-palette", _save(scene.convert("P"), "PNG")
    transparent = scene.convert("P")
    yield "mode", "png-palette-transparent", _save(transparent, "PNG", transparency=0)
    yield "mode", "png-la", _save(scene.convert("LA"), "PNG")
    yield "mode", "png-rgba", _save(scene.convert("RGBA"), "PNG")
    yield "mode", "png-rgba-all-transparent", _save(Image.new("RGBA", (120, 160), (0, 0, 0, 0)), "PNG")
    yield "mode", "png-1bit", _save(scene.convert("1"), "PNG")
    yield "mode", "png-16bit-gray", png_raw(160, 200, 16, 0)
    yield "mode", "png-16bit-rgb", png_raw(160, 200, 16, 2)
    yield "mode", "png-16bit-rgba", png_raw(160, 200, 16, 6)
    yield "mode", "tiff-int32", _save(Image.fromarray(np.arange(160 * 200, dtype=np.int32).reshape(200, 160)), "TIFF")
    yield (
        "mode",
        "tiff-float",
        _save(Image.fromarray(np.linspace(0, 1, 160 * 200, dtype=np.float32).reshape(200, 160)), "TIFF"),
    )
    yield "mode", "bmp-1bit", _save(scene.convert("1"), "BMP")
    yield "mode", "webp-rgba", _save(scene.convert("RGBA"), "WEBP")
    yield "mode", "jpeg-gray", _save(scene.convert("L"), "JPEG")


def _animated() -> Iterator[Entry]:
    frames = [_scene(seed=i) for i in range(4)]
    yield (
        "animated",
        "gif",
        _save(frames[0].convert("P"), "GIF", save_all=True, append_images=[f.convert("P") for f in frames[1:]]),
    )
    yield "animated", "png-apng", _save(frames[0], "PNG", save_all=True, append_images=frames[1:])
    yield "animated", "webp", _save(frames[0], "WEBP", save_all=True, append_images=frames[1:])
    yield "animated", "tiff-pages", _save(frames[0], "TIFF", save_all=True, append_images=frames[1:])


def _exif() -> Iterator[Entry]:
    scene = _scene((200, 120))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        yield "exif", f"jpeg-orientation-{orientation}", _save(scene, "JPEG", exif=exif)
    exif = Image.Exif()
    exif[0x0112] = 99
    yield "exif", "jpeg-orientation-99", _save(scene, "JPEG", exif=exif)
    good = _save(scene, "JPEG")
    yield "exif", "jpeg-garbage-app1", good[:2] + b"\xff\xe1\x00\x20Exif\x00\x00" + b"\xff" * 26 + good[2:]
    yield "exif", "jpeg-app1-length-lies", good[:2] + b"\xff\xe1\xff\xffExif\x00\x00MM\x00*" + good[2:]


def _bit_flips(valid: dict[str, bytes], per_format: int = 12) -> Iterator[Entry]:
    rng = random.Random(9)
    for fmt, data in valid.items():
        for number in range(per_format):
            flipped = bytearray(data)
            for _ in range(1 + number % 4):
                at = rng.randrange(len(flipped))
                flipped[at] ^= 1 << rng.randrange(8)
            yield "bit flips", f"{fmt}-{number}", bytes(flipped)


def corpus() -> list[Entry]:
    valid = _valid()
    return [
        *_not_images(),
        *_truncated(valid),
        *_wrong_signatures(valid),
        *_bombs(),
        *_dimensions(),
        *_modes(),
        *_animated(),
        *_exif(),
        *_bit_flips(valid),
    ]

"""Coverage-guided fuzzing (atheris + libFuzzer) of the safe image decoder, firs.vision.decode.decode_photo.

Every input is handed to decode_photo as uploaded bytes. ImageError is the expected answer to bad bytes;
any other exception is a crash, and so is a decoded picture that breaks the decoder's promises: mode RGB,
both sides > 0, long side <= WORK_SIDE, Photo.size positive, to_original of the full picture's box inside
Photo.size, and the picture's aspect matching Photo.size's (both upright). PIL and firs are instrumented.
    python fuzz/fuzz_decode.py --make-seeds fuzz/corpus
    python fuzz/fuzz_decode.py fuzz/corpus -max_total_time=120 -rss_limit_mb=2048
Crash inputs go to fuzz/artifacts/ (unless -artifact_prefix= is given); -print_final_stats=1 is added.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import atheris
import numpy as np

with atheris.instrument_imports(include=["PIL", "firs", "pillow_heif"]):
    from PIL import Image

    Image.init()  # every format plugin, imported here so that it is instrumented too
    from firs.errors import ImageError
    from firs.vision.decode import WORK_SIDE, Photo, decode_photo

HERE = Path(__file__).resolve().parent
ORIENTATION = 0x0112


class BrokenInvariant(AssertionError):
    """decode_photo answered a picture that breaks what it promises."""


def check(photo: Photo) -> None:
    """The decoder's promises about a picture it accepted; BrokenInvariant names the first one broken."""
    image = photo.image
    width, height = image.size
    original_w, original_h = photo.size
    if image.mode != "RGB":
        raise BrokenInvariant(f"mode {image.mode}, not RGB")
    if width <= 0 or height <= 0:
        raise BrokenInvariant(f"empty picture {width}x{height}")
    if max(width, height) > WORK_SIDE:
        raise BrokenInvariant(f"picture {width}x{height} is over WORK_SIDE={WORK_SIDE}")
    if original_w <= 0 or original_h <= 0:
        raise BrokenInvariant(f"Photo.size {photo.size} is not positive")
    x0, y0, x1, y1 = photo.to_original((0, 0, width, height))
    if not (0 <= x0 <= x1 <= original_w and 0 <= y0 <= y1 <= original_h):
        raise BrokenInvariant(f"to_original of the full box is {[x0, y0, x1, y1]}, outside Photo.size {photo.size}")
    # Both are upright views of one picture: their aspects agree up to the rounding of the reductions.
    expected_h = width * original_h / original_w
    if abs(height - expected_h) > 3 + 0.03 * expected_h:
        raise BrokenInvariant(
            f"picture {width}x{height} and Photo.size {original_w}x{original_h} disagree on the aspect "
            "(EXIF orientation applied to one, not the other?)"
        )
    image.getpixel((width - 1, height - 1))  # the pixels are there


def test_one_input(data: bytes) -> None:
    try:
        photo = decode_photo(data, "fuzz")
    except ImageError:
        return
    check(photo)


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def make_seeds(folder: Path) -> list[Path]:
    """Small valid pictures of every accepted kind, as a starting corpus."""
    folder.mkdir(parents=True, exist_ok=True)
    ys, xs = np.mgrid[0:24, 0:40]
    rgb = Image.fromarray(np.stack([xs * 6, ys * 10, (xs + ys) * 4], axis=-1).astype(np.uint8), "RGB")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray((xs * 6).astype(np.uint8), "L"))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    wide = Image.fromarray((xs * 1600 + ys * 100).astype(np.uint16))  # 16-bit grey, values over 255
    rotated = Image.Exif()
    rotated[ORIENTATION] = 6  # stored sideways: 40x24 on disk, 24x40 upright
    seeds = {
        "rgb.jpg": _encode(rgb, "JPEG", quality=80),
        "progressive.jpg": _encode(rgb, "JPEG", quality=70, progressive=True),
        "grey.jpg": _encode(rgb.convert("L"), "JPEG"),
        "cmyk.jpg": _encode(rgb.convert("CMYK"), "JPEG"),
        "exif-rotated.jpg": _encode(rgb, "JPEG", exif=rotated.tobytes()),
        "rgb.png": _encode(rgb, "PNG"),
        "16bit.png": _encode(wide, "PNG"),
        "palette.png": _encode(palette, "PNG", transparency=0),
        "rgba.png": _encode(rgba, "PNG"),
        "exif-rotated.png": _encode(rgb, "PNG", exif=rotated.tobytes()),
        "palette.gif": _encode(palette, "GIF"),
        "rgb.bmp": _encode(rgb, "BMP"),
        "rgb.tif": _encode(rgb, "TIFF"),
        "lzw.tif": _encode(rgba, "TIFF", compression="tiff_lzw"),
        "lossy.webp": _encode(rgb, "WEBP", quality=60),
        "lossless-rgba.webp": _encode(rgba, "WEBP", lossless=True),
        "rgb.heic": _encode(rgb, "HEIF", quality=70),  # HEIF's writer: pillow-heif, registered by firs
        "irot.heic": _encode(rgb, "HEIF", exif=rotated.tobytes()),  # written as an irot turn, not EXIF's
    }
    paths = []
    for name, data in seeds.items():
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--make-seeds":
        paths = make_seeds(Path(sys.argv[2]))
        for path in paths:  # each seed must be a picture the decoder accepts and the checks pass
            check(decode_photo(path.read_bytes(), path.name))
        print(f"{len(paths)} seeds written to {sys.argv[2]}")
        return
    warnings.simplefilter("ignore")  # PIL's warnings about odd files are expected; bombs are errors in decode
    argv = list(sys.argv)
    if not any(arg.startswith("-artifact_prefix=") for arg in argv):
        (HERE / "artifacts").mkdir(exist_ok=True)
        argv.append(f"-artifact_prefix={HERE / 'artifacts'}/")
    if not any(arg.startswith("-print_final_stats=") for arg in argv):
        argv.append("-print_final_stats=1")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

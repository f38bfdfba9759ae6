import io

import numpy as np
import pytest
from PIL import Image

from firs.errors import ImageError
from firs.vision.decode import decode_image, decode_photo, load_image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_rejects_non_images_and_empty() -> None:
    with pytest.raises(ImageError, match="not an image"):
        decode_image(b"%PDF-1.4 hello", "doc.pdf")
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"", "empty.jpg")


def test_rejects_truncated_jpeg() -> None:
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 60).convert("RGB").save(buffer, "JPEG")
    data = buffer.getvalue()
    with pytest.raises(ImageError, match=r"truncated|damaged"):
        decode_image(data[: len(data) // 2], "cut.jpg")


def test_rejects_decompression_bomb_and_absurd_sizes() -> None:
    bomb = _png(Image.new("1", (11_000, 11_000)))  # 121 Mpx in a few kB
    assert len(bomb) < 100_000
    with pytest.raises(ImageError, match=r"too large|bomb"):
        decode_image(bomb, "bomb.png")
    with pytest.raises(ImageError, match="too large"):
        decode_image(_png(Image.new("L", (12_500, 4))), "strip.png")
    with pytest.raises(ImageError, match="too small"):
        decode_image(_png(Image.new("RGB", (2, 2))), "dot.png")


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    assert decode_image(buffer.getvalue()).size == (20, 40)


def test_modes_convert_to_rgb() -> None:
    transparent = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    assert decode_image(_png(transparent)).getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert decode_image(_png(palette)).getpixel((3, 3)) == (10, 200, 30)
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    buffer = io.BytesIO()
    cmyk.save(buffer, "JPEG")
    r, g, b = decode_image(buffer.getvalue()).getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60
    sixteen = Image.fromarray(np.full((16, 16), 65535, dtype=np.uint16))
    sixteen_mid = Image.fromarray(np.full((16, 16), 32768, dtype=np.uint16))
    assert decode_image(_png(sixteen)).getpixel((0, 0)) == (255, 255, 255)
    assert decode_image(_png(sixteen_mid)).getpixel((0, 0))[0] in (127, 128)
    for image in (transparent, palette, sixteen):
        assert decode_image(_png(image)).mode == "RGB"


def test_load_image_missing_file(tmp_path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.jpg")


@pytest.mark.parametrize("mode", ["L", "RGB", "I;16", "F"])
def test_exif_orientation_holds_for_every_mode(mode: str) -> None:
    """16-bit and float pictures are rebuilt during conversion: the turn must survive it."""
    base = Image.new("L", (60, 30), 0)
    base.paste(255, (0, 0, 20, 10))  # a bright corner to follow
    image = {"L": base, "RGB": base.convert("RGB")}.get(mode)
    if image is None:
        scale = 257 if mode == "I;16" else 1 / 255
        dtype = np.uint16 if mode == "I;16" else np.float32
        image = Image.fromarray((np.asarray(base, dtype=np.float64) * scale).astype(dtype))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown after turning 90 degrees clockwise
    buffer = io.BytesIO()
    image.save(buffer, "TIFF" if mode == "F" else "PNG", exif=exif)
    photo = decode_photo(buffer.getvalue(), mode)
    assert photo.size == (30, 60) and photo.image.size == (30, 60)
    assert photo.image.getpixel((25, 5))[0] > 200 and photo.image.getpixel((5, 55))[0] < 50


@pytest.fixture
def decoded_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The size each JPEG is decoded at (after `draft` picks its reduced scale), as they come."""
    from PIL import JpegImagePlugin

    sizes: list[tuple[int, int]] = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def recording(self, mode, size):  # type: ignore[no-untyped-def]
        result = draft(self, mode, size)
        sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", recording)
    return sizes


def _jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(("side", "scale"), [(480, 8), (1024, 2)])
def test_a_phone_jpeg_decodes_at_the_least_scale_that_covers_the_side(
    side: int, scale: int, decoded_sizes: list[tuple[int, int]]
) -> None:
    photo = decode_photo(_jpeg((4032, 3024)), "phone.jpg", side)
    # 4032 x 3024 fitted into `side` is side x 3/4 side: 1/8 scale (504 x 378) still covers 480 x 360.
    assert decoded_sizes == [(4032 // scale, 3024 // scale)]
    assert photo.image.size == (side, side * 3 // 4) and photo.size == (4032, 3024)


@pytest.mark.parametrize(
    ("size", "decoded", "reduced"), [((640, 480), (320, 240), (299, 224)), ((1080, 1920), (270, 480), (224, 399))]
)
def test_a_photo_needed_down_to_a_short_side_decodes_no_larger(
    size: tuple[int, int], decoded: tuple[int, int], reduced: tuple[int, int], decoded_sizes: list[tuple[int, int]]
) -> None:
    """The whole-photo search needs the embedder's 224 px on the short side: a JPEG decodes at the
    least scale that still covers it, whatever the photo's shape (a tall phone photo too), and is
    reduced to just that."""
    photo = decode_photo(_jpeg(size), "photo.jpg", cover=224)
    assert decoded_sizes == [decoded]
    assert photo.image.size == reduced and min(photo.image.size) == 224 and photo.size == size
    small = Image.new("RGB", (150, 200), (90, 120, 200))
    buffer = io.BytesIO()
    small.save(buffer, "PNG")
    assert decode_photo(buffer.getvalue(), "small.png", cover=224).image.size == (150, 200)  # never enlarged

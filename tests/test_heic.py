"""HEIC/HEIF photos (iPhones): recognised, decoded upright, searched by the API, the CLI and the build."""

from __future__ import annotations

import csv
import io
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance

from firs.cli import main
from firs.errors import ImageError
from firs.pipeline.build import BuildOptions, build_index
from firs.search.engine import Query, SearchEngine
from firs.service.app import ServiceOptions, create_app
from firs.vision.decode import decode_photo, sniff_media_type
from firs.vision.embedder import Embedder

from .helpers import catalog_ids

ORIENTATION = 0x0112


def heic_bytes(image: Image.Image, orientation: int | None = None) -> bytes:
    """`image` as HEIC, written by pillow-heif (whose opener firs.vision.decode registers)."""
    params: dict[str, object] = {"quality": 90}
    if orientation is not None:
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        params["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "HEIF", **params)
    return buffer.getvalue()


def street_copy(path: Path) -> Image.Image:
    """The product photographed differently: cropped, smaller, darker."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    image = image.crop((int(w * 0.06), int(h * 0.04), int(w * 0.97), int(h * 0.95)))
    return ImageEnhance.Brightness(image.resize((180, 170))).enhance(0.85)


def corner_picture() -> Image.Image:
    """60x30, black with a white 20x10 block in the top-left corner to follow through turns."""
    image = Image.new("RGB", (60, 30), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 20, 10))
    return image


def test_sniff_recognises_heic_and_heif_by_their_brand() -> None:
    assert sniff_media_type(heic_bytes(corner_picture())) == "image/heic"

    def ftyp(major: bytes, *compatible: bytes) -> bytes:
        body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
        return (len(body) + 4).to_bytes(4, "big") + body + b"\x00" * 16

    assert sniff_media_type(ftyp(b"heix", b"mif1", b"heic")) == "image/heic"
    assert sniff_media_type(ftyp(b"mif1", b"heic")) == "image/heif"
    assert sniff_media_type(ftyp(b"msf1", b"hevc")) == "image/heif-sequence"
    assert sniff_media_type(ftyp(b"hevc", b"msf1")) == "image/heic-sequence"
    for other in (b"avif", b"isom", b"qt  ", b"mp42"):  # AVIF (no AV1 decoder), MP4 and QuickTime videos
        assert sniff_media_type(ftyp(other, b"mif1")) is None
    assert sniff_media_type(b"\x00\x00\x00\x18ftyp") is None  # too short to name a brand


def test_heic_decodes_to_its_size_and_colours() -> None:
    photo = decode_photo(heic_bytes(corner_picture()), "plain.heic")
    assert photo.size == (60, 30) and photo.image.size == (60, 30) and photo.image.mode == "RGB"
    assert min(photo.image.getpixel((5, 5))) > 200 and max(photo.image.getpixel((55, 25))) < 50

    large = Image.new("RGB", (2400, 1600), (200, 40, 90))
    photo = decode_photo(heic_bytes(large), "large.heic")
    assert photo.size == (2400, 1600) and photo.image.size == (1024, 683)
    r, g, b = photo.image.getpixel((500, 300))
    assert abs(r - 200) < 12 and abs(g - 40) < 12 and abs(b - 90) < 12


def test_heic_orientation_is_applied_once() -> None:
    """As an iPhone writes it: the turn is an `irot` box and the EXIF orientation says 6 too.
    libheif applies the irot; the EXIF orientation must not turn the picture a second time."""
    data = heic_bytes(corner_picture(), orientation=6)
    assert b"irot" in data and b"MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06" in data
    photo = decode_photo(data, "rotated.heic")
    assert photo.size == (30, 60) and photo.image.size == (30, 60)
    # turned 90 degrees clockwise: the top-left block is now top-right
    assert min(photo.image.getpixel((25, 5))) > 200 and max(photo.image.getpixel((5, 55))) < 50
    assert photo.to_original((0, 0, 30, 60)) == [0, 0, 30, 60]


def test_damaged_heic_is_an_image_error() -> None:
    data = heic_bytes(Image.effect_noise((300, 200), 60).convert("RGB"))
    for cut in (len(data) // 2, len(data) - 10):
        with pytest.raises(ImageError, match=r"damaged or truncated|cannot open") as caught:
            decode_photo(data[:cut], "cut.heic")
        assert "\n" not in str(caught.value)
    # a header announcing 64x48 over a 300x200 picture: libheif's security limit (a RuntimeError)
    at = data.index(b"ispe")
    small = data[: at + 8] + struct.pack(">II", 64, 48) + data[at + 16 :]
    with pytest.raises(ImageError, match="damaged or truncated"):
        decode_photo(small, "lying.heic")


def test_heic_cropped_to_another_size_than_announced() -> None:
    """A clean-aperture box shifted past the edge: libheif decodes fewer rows than the header
    announced; the original size follows the decoded picture, not the header."""
    data = heic_bytes(corner_picture(), orientation=6)
    at = data.index(b"clap") + 4
    values = list(struct.unpack(">8i", data[at : at + 32]))
    values[4] -= 6 * values[5]  # horizontal offset of the stored (sideways) picture: 6 px further left
    shifted = data[:at] + struct.pack(">8i", *values) + data[at + 32 :]
    assert Image.open(io.BytesIO(shifted)).size == (30, 60)
    photo = decode_photo(shifted, "shifted.heic")
    assert photo.size == photo.image.size and photo.size[0] == 30 and photo.size[1] < 60


@pytest.fixture(scope="module")
def client(garment_index: Path, embedder: Embedder) -> Iterator[TestClient]:
    app = create_app(SearchEngine(garment_index, embedder), ServiceOptions(max_upload_bytes=300_000))
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize("mode", ["simple", "fine"])
def test_api_searches_a_heic_upload(client: TestClient, garment_catalog: Path, mode: str) -> None:
    product_id = "skirt-black-solid"
    data = heic_bytes(street_copy(garment_catalog.parent / "img" / f"{product_id}.png"))
    response = client.post(
        f"/api/search?top_k=3&mode={mode}", files={"image": ("IMG_0001.HEIC", data, "application/octet-stream")}
    )
    answer = response.json()
    assert response.status_code == 200, answer
    assert answer["image_type"] == "image/heic" and answer["image_size"] == [180, 170]
    assert answer["results"][0]["id"] == product_id


def test_cli_searches_a_heic_file(
    garment_index: Path, garment_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product_id = catalog_ids(garment_catalog)[3]
    query = tmp_path / "IMG_0002.HEIC"
    query.write_bytes(heic_bytes(street_copy(garment_catalog.parent / "img" / f"{product_id}.png")))
    assert main(["search", str(query), "--index", str(garment_index), "--top-k", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["id"] == product_id


def test_build_reads_heic_catalogue_images(garment_catalog: Path, embedder: Embedder, tmp_path: Path) -> None:
    """A catalogue whose pictures are HEIC files is indexed like any other, and found."""
    ids = catalog_ids(garment_catalog)[:3]
    pictures = garment_catalog.parent / "img"
    catalog = tmp_path / "catalog.csv"
    with catalog.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image", "title"])
        for product_id in ids:
            (tmp_path / f"{product_id}.heic").write_bytes(heic_bytes(Image.open(pictures / f"{product_id}.png")))
            writer.writerow([product_id, f"{product_id}.heic", product_id])
    out = tmp_path / "index"
    build_index([catalog], out, BuildOptions(progress=False, cache_dir=tmp_path / "cache"), embedder)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"read": 3, "indexed": 3, "skipped": 0, "failed": 0}
    query = heic_bytes(street_copy(pictures / f"{ids[1]}.png"))
    assert SearchEngine(out, embedder).search(Query(image=query, k=1)).results[0]["id"] == ids[1]

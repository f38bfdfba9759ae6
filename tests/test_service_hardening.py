"""The service as an attacker and a phone would use it: no file leaks, no crash, boxes in the
uploaded photo's own pixels, bodies capped while streaming, unknown Host headers refused."""

from __future__ import annotations

import io
import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import skimage.data
from fastapi.testclient import TestClient
from PIL import Image

from firs.pipeline.build import BuildOptions, build_index
from firs.search.engine import SearchEngine
from firs.service.app import ServiceOptions, allowed_hosts, create_app
from firs.vision.embedder import Embedder

from .helpers import served

LIMIT = 300_000


def _jpeg(image: Image.Image, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88, **save)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(garment_index: Path, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(SearchEngine(garment_index, embedder))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def hostile_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A catalogue naming /etc/passwd, an id with a slash, and a picture deleted after the build."""
    folder = tmp_path_factory.mktemp("hostile")
    for name, colour in (("slash", "red"), ("gone", "navy"), ("kept", "green")):
        Image.new("RGB", (96, 128), colour).save(folder / f"{name}.png")
    catalog = folder / "catalog.csv"
    catalog.write_text(
        "id,image,title\nshirts/red-1,slash.png,Red shirt\nx1,/etc/passwd,Passwd\n"
        "gone,gone.png,Navy\nkept,kept.png,Green\n"
    )
    out = folder / "index"
    # --image-root / lets the path through the reader: the file still must not be served.
    options = BuildOptions(progress=False, cache_dir=folder / "cache", image_roots=[Path("/")])
    report = build_index([catalog], out, options, embedder)
    assert report.indexed == 3 and "x1" in report.failures
    (folder / "gone.png").unlink()
    return out


def test_a_catalogue_path_is_never_served(hostile_index: Path, embedder: Embedder) -> None:
    with TestClient(create_app(SearchEngine(hostile_index, embedder))) as client:
        passwd = client.get("/api/products/x1/image")
        assert passwd.status_code == 404 and set(passwd.json()) == {"error", "detail"}
        assert b"root:" not in passwd.content and "/etc" not in passwd.text
        product = client.get("/api/products/x1").json()
        assert product["status"] == "failed" and "/etc" not in json.dumps(product)
        gone = client.get("/api/products/gone/image")  # its file is gone: the index has its own copy
        assert gone.status_code == 200 and Image.open(io.BytesIO(gone.content)).getpixel((5, 5))[2] > 80
        slashed = client.get("/api/products/shirts%2Fred-1/image?size=128")
        assert slashed.status_code == 200 and slashed.headers["content-type"] == "image/jpeg"
        assert client.get("/api/products/shirts/red-1").json()["id"] == "shirts/red-1"
        similar = client.get("/api/products/shirts/red-1/similar?top_k=2")
        assert similar.status_code == 200 and "shirts/red-1" not in [r["id"] for r in similar.json()["results"]]
        results = client.post("/api/search/text", json={"text": "shirt"}).json()["results"]
        stats = client.get("/api/stats").text
        for text in (json.dumps(results), stats):
            assert str(hostile_index.parent) not in text and "/etc/passwd" not in text


def _person(size: tuple[int, int]) -> Image.Image:
    """The astronaut scaled to `size` on a white canvas below (a tall phone photo)."""
    person = Image.fromarray(skimage.data.astronaut())
    canvas = Image.new("RGB", size, "white")
    side = min(size)
    canvas.paste(person.resize((side, side), Image.BILINEAR), (0, 0))
    return canvas


def test_boxes_are_in_the_uploaded_photos_pixels(client: TestClient) -> None:
    def box(data: bytes) -> tuple[list[int], list[int]]:
        response = client.post("/api/search?mode=fine&region=upper", files={"image": ("p.jpg", data)})
        assert response.status_code == 200, response.text
        answer = response.json()
        return answer["regions"][0]["box"], answer["image_size"]

    small, small_size = box(_jpeg(_person((384, 512))))
    assert small_size == [384, 512]
    phone = _person((3024, 4032))  # decoded at a reduced scale: the box must still be in these pixels
    big, big_size = box(_jpeg(phone))
    assert big_size == [3024, 4032]
    # The pose wobbles a little between near-identical pixels (here the box's lower edge follows
    # a wrist whose visibility is borderline: 7.8 % of the height between the two sizes);
    # coordinates in the wrong frame (the decoded picture's, half scale, or not turned) would be
    # off by a third of the photo or more.
    scale = 3024 / 384
    assert all(abs(b - s * scale) < 0.1 * 4032 for b, s in zip(big, small, strict=True)), (big, small)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side; shown upright after turning 90 degrees clockwise
    turned, turned_size = box(_jpeg(phone.transpose(Image.Transpose.ROTATE_90), exif=exif))
    assert turned_size == [3024, 4032]
    assert all(abs(t - b) < 0.1 * 4032 for t, b in zip(turned, big, strict=True)), (turned, big)


def test_a_thin_image_is_a_clear_422_in_every_mode(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 11000), "red").save(buffer, "PNG")
    for mode in ("simple", "fine", "tag"):
        response = client.post(f"/api/search?mode={mode}", files={"image": ("thin.png", buffer.getvalue())})
        assert response.status_code == 422 and "too thin" in response.json()["error"], response.text


def test_unknown_host_headers_are_refused(garment_index: Path, embedder: Embedder) -> None:
    hosts = allowed_hosts("127.0.0.1", [])
    assert "localhost" in hosts and "evil.example" not in hosts and allowed_hosts("0.0.0.0", []) == ("*",)
    app = create_app(SearchEngine(garment_index, embedder), ServiceOptions(allowed_hosts=hosts))
    with TestClient(app, base_url="http://localhost:8000") as local:
        assert local.get("/api/health").status_code == 200
        rebound = local.get("/api/health", headers={"host": "evil.example"})
        assert rebound.status_code == 400 and "evil.example" in rebound.json()["error"]


def test_a_chunked_upload_is_cut_off_at_the_limit(garment_index: Path, embedder: Embedder) -> None:
    app = create_app(SearchEngine(garment_index, embedder), ServiceOptions(max_upload_bytes=LIMIT))
    with served(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            boundary = "b0undary"
            sock.sendall(
                (
                    f"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
                ).encode()
            )
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'.encode()
            chunk = head + b"\xff\xd8\xff" + b"\0" * (64 * 1024)
            sent, answer = 0, b""
            while sent < 50 * LIMIT and not answer:  # the server must answer long before 15 MB
                try:
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(chunk)
                chunk = b"\0" * (64 * 1024)
                if select.select([sock], [], [], 0)[0]:
                    answer = sock.recv(65536)
            while b'"error"' not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        # The body never ends (no last chunk): an answer at all means the server stopped reading,
        # long before the 15 MB (what was sent beyond the limit sits in loopback buffers).
        assert b'"error"' in answer and sent < 50 * LIMIT

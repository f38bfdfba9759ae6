"""The HTTP API, in process (FastAPI's test client): answers, errors, cache, back-pressure."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import skimage.data
from fastapi.testclient import TestClient
from PIL import Image

from firs.index import directory as layout
from firs.search.engine import SearchEngine
from firs.service import pool as pool_module
from firs.service.app import ServiceOptions, create_app
from firs.service.pool import BoundedPool, Busy
from firs.vision.embedder import Embedder

from .helpers import transformed_copy


@pytest.fixture(scope="module")
def client(garment_index: Path, embedder: Embedder) -> Iterator[TestClient]:
    app = create_app(SearchEngine(garment_index, embedder), ServiceOptions(max_upload_bytes=300_000))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def astronaut_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _photo(garment_catalog: Path, product_id: str, tmp_path: Path) -> bytes:
    return transformed_copy(garment_catalog.parent / "img" / f"{product_id}.png", tmp_path / "q.jpg").read_bytes()


def test_photo_search_simple(client: TestClient, garment_catalog: Path, tmp_path: Path) -> None:
    data = _photo(garment_catalog, "skirt-black-solid", tmp_path)
    answer = client.post("/api/search?top_k=3", files={"image": ("q.jpg", data, "image/jpeg")}).json()
    assert answer["results"][0]["id"] == "skirt-black-solid" and len(answer["results"]) == 3
    assert set(answer["timings_ms"]) == {"decode", "embed", "search", "total"}
    assert answer["cached"] is False and answer["image_type"] == "image/jpeg"


def test_fine_all_items_regions(client: TestClient, astronaut_jpeg: bytes) -> None:
    response = client.post("/api/search?mode=fine&all_items=true&top_k=2", files={"image": ("a.jpg", astronaut_jpeg)})
    answer = response.json()
    assert response.status_code == 200, answer
    assert answer["regions"][0]["label"] == "upper" and answer["regions"][0]["name"] == "top"  # in words
    assert answer["items"][0]["region"]["label"] == "upper"
    x0, y0, x1, y1 = answer["regions"][0]["box"]
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
    assert {"detect", "segment", "embed", "search"} <= set(answer["timings_ms"])


def test_cache_hit_counted(client: TestClient, garment_catalog: Path, tmp_path: Path) -> None:
    data = _photo(garment_catalog, "dress-pink-striped", tmp_path)
    before = client.get("/api/stats").json()["cache"]["hits"]
    first = client.post("/api/search?top_k=4&where=price<=60", files={"image": ("q.jpg", data)}).json()
    second = client.post("/api/search?top_k=4&where=price<=60", files={"image": ("q.jpg", data)}).json()
    other = client.post("/api/search?top_k=5&where=price<=60", files={"image": ("q.jpg", data)}).json()
    assert (first["cached"], second["cached"], other["cached"]) == (False, True, False)
    assert second["results"] == first["results"]
    assert client.get("/api/stats").json()["cache"]["hits"] == before + 1


def test_errors_are_json_with_the_right_status(client: TestClient) -> None:
    text = client.post("/api/search", files={"image": ("photo.jpg", b"this is not a picture", "image/jpeg")})
    assert text.status_code == 415 and "not an image" in text.json()["error"]
    assert text.json()["detail"]["declared_type"] == "image/jpeg"
    truncated = client.post("/api/search", files={"image": ("t.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)})
    assert truncated.status_code == 422 and truncated.json()["error"]
    big = client.post("/api/search", files={"image": ("big.jpg", b"\xff\xd8\xff" + b"\x00" * 400_000)})
    assert big.status_code == 413 and "limit" in big.json()["error"]
    for url in ("/api/search?mode=sideways", "/api/search?top_k=0", "/api/search?where=price<=cheap"):
        bad = client.post(url, files={"image": ("x.jpg", b"\xff\xd8\xff\x00")})
        assert bad.status_code == 422, url
        assert set(bad.json()) == {"error", "detail"}
    missing = client.post("/api/search")
    assert missing.status_code == 422 and "image" in missing.json()["error"]
    unknown = client.get("/api/products/nope")
    assert unknown.status_code == 404 and unknown.json()["error"] == "no product 'nope' in this index"


def test_text_products_similar_health_stats(client: TestClient) -> None:
    answer = client.post("/api/search/text", json={"text": "striped dress", "top_k": 3, "where": ["price<=60"]}).json()
    assert answer["mode"] == "text" and answer["results"]
    assert client.post("/api/search/text", json={"text": ""}).status_code == 422
    product = client.get("/api/products/dress-black-solid").json()
    assert product["title"] == "Black dress" and "type:dress" in [t["label"] for t in product["labels"]]
    image = client.get("/api/products/dress-black-solid/image?size=128")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(image.content)).size) == 128
    full = client.get("/api/products/dress-black-solid/image")  # the index's own copy, re-encoded
    assert full.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(full.content)).format == "JPEG"
    assert client.get("/api/products/dress-black-solid/image?size=77").status_code == 422
    similar = client.get("/api/products/dress-black-solid/similar?top_k=3").json()
    assert len(similar["results"]) == 3 and "dress-black-solid" not in [r["id"] for r in similar["results"]]
    assert client.get("/api/health").json() == {"status": "ok", "products": 24}
    stats = client.get("/api/stats").json()
    assert stats["catalogue"]["indexed"] == 24 and stats["index"]["manifest"]["format_version"] == layout.FORMAT_VERSION
    assert "path" not in stats["index"] and "sources" not in stats["index"]["manifest"]
    assert stats["uptime_s"] >= 0 and "price" in stats["filters"]
    assert stats["catalogue"]["facets"]["brand"] == [{"value": "Acme", "products": 24}]
    assert stats["catalogue"]["price"]["products"] == 24 and stats["catalogue"]["currency"] is None
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert client.get("/docs").status_code == 200


def test_pool_idle_work_waits_for_a_quiet_spell(monkeypatch: pytest.MonkeyPatch) -> None:
    """The idle work (a heap trim) runs once the pool stays idle, never before an answer returns."""
    monkeypatch.setattr(pool_module, "IDLE_DELAY_S", 0.1)
    ran: list[float] = []
    done = threading.Event()
    pool = BoundedPool(workers=1, queue=1, on_idle=lambda: (ran.append(time.monotonic()), done.set()))

    async def scenario() -> None:
        await pool.run(lambda: None)
        assert not ran  # not on the answer's path
        await asyncio.sleep(0.05)
        await pool.run(lambda: None)  # the first idle spell is cut short
        await asyncio.sleep(0.3)

    start = time.monotonic()
    asyncio.run(scenario())
    assert done.wait(2) and len(ran) == 1 and ran[0] - start >= 0.15


def test_pool_refuses_beyond_capacity() -> None:
    pool = BoundedPool(workers=1, queue=1)
    release = threading.Event()

    async def scenario() -> list[str]:
        first = asyncio.create_task(pool.run(release.wait))
        second = asyncio.create_task(pool.run(release.wait))
        await asyncio.sleep(0.05)
        try:
            await pool.run(release.wait)
            third = "ran"
        except Busy:
            third = "busy"
        release.set()
        await asyncio.gather(first, second)
        return [third, str(pool.in_flight), str(pool.refused)]

    assert asyncio.run(scenario()) == ["busy", "0", "1"]
    pool.shutdown()


def test_busy_answers_503_with_retry_after(garment_index: Path, embedder: Embedder, garment_catalog: Path) -> None:
    engine = SearchEngine(garment_index, embedder)
    app = create_app(engine, ServiceOptions(workers=1, queue=0))
    release, started = threading.Event(), threading.Event()
    original = engine.search

    def slow(query):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(10)
        return original(query)

    engine.search = slow  # type: ignore[method-assign]
    data = (garment_catalog.parent / "img" / "dress-black-solid.png").read_bytes()
    with TestClient(app) as client:
        results: list[int] = []
        worker = threading.Thread(
            target=lambda: results.append(client.post("/api/search", files={"image": ("a.png", data)}).status_code)
        )
        worker.start()
        assert started.wait(10)
        busy = client.post("/api/search?top_k=2", files={"image": ("a.png", data)})
        release.set()
        worker.join(10)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert "busy" in busy.json()["error"] and results == [200]

"""A running service follows its index: changes by the CLI or the admin API, new versions,
replicas; the admin routes' keys."""

from __future__ import annotations

import csv
import io
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from firs.errors import FirsError
from firs.pipeline.live_update import AddOptions, add_products, remove_products
from firs.search.engine import SearchEngine
from firs.service.admin import read_admin_key
from firs.service.app import ServiceOptions, create_app
from firs.vision.embedder import Embedder

from .helpers import transformed_copy

KEY = "k" * 12 + "-admin-key-for-tests"


@pytest.fixture()
def index(garment_index: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(garment_index.resolve(), copy)
    return copy


def _client(index: Path, embedder: Embedder, key: str | None = KEY) -> TestClient:
    app = create_app(SearchEngine(index, embedder), ServiceOptions(admin_key=key), follow=index)
    return TestClient(app)


def _search(client: TestClient, photo: bytes, k: int = 5) -> dict:
    response = client.post(f"/api/search?top_k={k}", files={"image": ("q.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    return response.json()


def _until(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until `condition` held; fails after `seconds`."""
    start = time.perf_counter()
    while not condition():
        assert time.perf_counter() - start < seconds, "the service did not follow in time"
        time.sleep(0.02)
    return time.perf_counter() - start


def _csv(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["id", "image", "title", "category"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def test_changes_by_the_cli_are_served_within_a_second_by_every_replica(
    index: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    first = SearchEngine(index, verify=False).store.ids_by_label()[0]
    photo = transformed_copy(garment_catalog.parent / "img" / f"{first}.png", tmp_path / "q.jpg").read_bytes()
    source = tmp_path / "add.csv"
    source.write_bytes(_csv([{"id": "cli-twin", "image": f"img/{first}.png", "title": "Twin", "category": ""}]))
    shutil.copytree(garment_catalog.parent / "img", tmp_path / "img")
    with _client(index, embedder) as one, _client(index, embedder) as two:
        assert all(first in [r["id"] for r in _search(c, photo)["results"]] for c in (one, two))
        add_products(index, [source], AddOptions(progress=False, cache_dir=tmp_path / "c"))
        for client in (one, two):
            took = _until(lambda c=client: "cli-twin" in [r["id"] for r in _search(c, photo)["results"]], 1.0)
            assert took < 1.0
        remove_products(index, ["cli-twin", first])
        for client in (one, two):
            _until(lambda c=client: not {"cli-twin", first} & {r["id"] for r in _search(c, photo)["results"]}, 1.0)
            assert client.get(f"/api/products/{first}").status_code == 404
            assert client.get(f"/api/products/{first}/image").status_code == 404


def test_the_admin_api_adds_removes_and_compacts_and_the_cache_never_answers_stale(
    index: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    ids = SearchEngine(index, verify=False).store.ids_by_label()
    target = ids[2]
    photo = transformed_copy(garment_catalog.parent / "img" / f"{target}.png", tmp_path / "q.jpg").read_bytes()
    auth = {"Authorization": f"Bearer {KEY}"}
    with _client(index, embedder) as client:
        before = _search(client, photo)
        assert before["results"][0]["id"] == target and _search(client, photo)["cached"] is True

        picture = (garment_catalog.parent / "img" / f"{target}.png").read_bytes()
        files = [
            ("catalog", ("new.csv", _csv([{"id": "uploaded", "image": "p.png", "title": "Up", "category": ""}]))),
            ("images", ("p.png", picture, "image/png")),
        ]
        added = client.post("/api/products", files=files, headers=auth)
        assert added.status_code == 200, added.text
        assert added.json()["added"] == ["uploaded"]
        answer = _search(client, photo)  # at once in this process: no waiting for the follower
        assert answer["cached"] is False and {"uploaded", target} <= {r["id"] for r in answer["results"][:2]}

        assert client.delete(f"/api/products/{target}", headers=auth).status_code == 200
        answer = _search(client, photo)
        assert target not in [r["id"] for r in answer["results"]] and answer["cached"] is False
        assert client.delete(f"/api/products/{target}", headers=auth).status_code == 404

        unusable = client.post("/api/products", json=[{"id": "local", "image": "/etc/passwd"}], headers=auth)
        assert unusable.status_code == 422 and "no products could be read" in unusable.json()["error"]

        version = client.get("/api/stats").json()["index"]["manifest"]["created"]
        compacted = client.post("/api/compact", headers=auth)
        assert compacted.status_code == 200 and compacted.json()["compacted"] is True, compacted.text
        stats = client.get("/api/stats").json()
        assert "compacted" in stats["index"]["manifest"] and stats["index"]["manifest"]["created"] == version
        assert stats["catalogue"]["indexed"] == len(ids)
        answer = _search(client, photo)
        assert answer["results"][0]["id"] == "uploaded" and target not in [r["id"] for r in answer["results"]]
        assert client.post("/api/reload", headers=auth).json()["changed"] is False


def test_admin_routes_need_the_key_and_never_log_it(
    index: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    with _client(index, embedder, key=None) as client:
        assert client.post("/api/products", json=[]).status_code == 404
        assert client.post("/api/compact").status_code == 404
    wrong = "w" * 30
    with caplog.at_level(logging.WARNING, logger="firs.service"), _client(index, embedder) as client:
        missing = client.post("/api/reload")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert client.post("/api/reload", headers={"Authorization": f"Bearer {wrong}"}).status_code == 403
        assert client.delete("/api/products/x", headers={"Authorization": f"Basic {KEY}"}).status_code == 401
        assert client.post("/api/reload", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    logged = caplog.text
    assert "refused" in logged and wrong not in logged and KEY not in logged


def test_the_admin_key_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    assert read_admin_key(None, {}) is None
    assert read_admin_key(None, {"FIRS_ADMIN_KEY": f" {KEY} "}) == KEY
    path = tmp_path / "key"
    path.write_text(f"{KEY}\n")
    assert read_admin_key(path, {"FIRS_ADMIN_KEY": "other-key-that-is-long"}) == KEY
    path.write_text("short\n")
    with pytest.raises(FirsError, match="shorter than 16"):
        read_admin_key(path, {})
    with pytest.raises(FirsError, match="cannot read it"):
        read_admin_key(tmp_path / "missing", {})


def test_no_search_fails_while_the_index_changes_under_the_service(
    index: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    """Searches run without pause while products are added, removed and compacted away."""
    ids = SearchEngine(index, verify=False).store.ids_by_label()
    photo = transformed_copy(garment_catalog.parent / "img" / f"{ids[3]}.png", tmp_path / "q.jpg").read_bytes()
    source = tmp_path / "add.csv"
    source.write_bytes(
        _csv([{"id": f"n{n}", "image": f"img/{ids[n]}.png", "title": "", "category": ""} for n in range(6)])
    )
    shutil.copytree(garment_catalog.parent / "img", tmp_path / "img")
    statuses: list[int] = []
    done = threading.Event()
    auth = {"Authorization": f"Bearer {KEY}"}
    with _client(index, embedder) as client:

        def search_all_along() -> None:
            while not done.is_set():
                response = client.post("/api/search?top_k=5", files={"image": ("q.jpg", photo, "image/jpeg")})
                statuses.append(response.status_code)

        searcher = threading.Thread(target=search_all_along)
        searcher.start()
        try:
            for _ in range(2):
                add_products(index, [source], AddOptions(progress=False, cache_dir=tmp_path / "c"))
                remove_products(index, ["n1", "n2"])
                assert client.post("/api/compact", headers=auth).status_code == 200
        finally:
            done.set()
            searcher.join()
        assert len(statuses) >= 5 and set(statuses) == {200}
        assert client.get("/api/health").json()["products"] == len(ids) + 4

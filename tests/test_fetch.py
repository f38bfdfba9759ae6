"""Downloads against a local HTTP server this test starts (on loopback, so with allow_private)."""

from __future__ import annotations

import http.server
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from firs.catalog import fetch
from firs.catalog.fetch import FetchPolicy, ImageFetcher, cache_name
from firs.catalog.product import Product

from .conftest import jpeg_bytes

JPEG = jpeg_bytes(Image.new("RGB", (64, 64), "green"))
OTHER_JPEG = jpeg_bytes(Image.new("RGB", (64, 64), "blue"))
HITS: Counter[str] = Counter()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, kind: str = "image/jpeg") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        HITS[self.path] += 1
        if self.path == "/ok.jpg":
            self._send(200, JPEG)
        elif self.path == "/other.jpg":
            self._send(200, OTHER_JPEG)
        elif self.path == "/slow.jpg":
            time.sleep(1.5)
            self._send(200, JPEG)
        elif self.path == "/missing.jpg":
            self._send(404, b"not found", "text/plain")
        elif self.path == "/huge.jpg":
            self._send(200, JPEG + b"\0" * 200_000)
        elif self.path == "/page.jpg":
            self._send(200, b"<html>sorry</html>", "text/html")
        elif self.path == "/moved.jpg":
            self.send_response(302)
            self.send_header("Location", "/ok.jpg")
            self.end_headers()
        elif self.path == "/flaky.jpg":
            self._send(503, b"busy", "text/plain") if HITS[self.path] < 3 else self._send(200, JPEG)
        else:
            self._send(404, b"", "text/plain")


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out closes the socket: expected here


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _fetcher(tmp_path: Path) -> ImageFetcher:
    policy = FetchPolicy(timeout=0.5, retries=2, backoff=0.05, max_bytes=100_000, workers=4, allow_private=True)
    return ImageFetcher(tmp_path / "cache", policy)


def test_download_cases(server: str, tmp_path: Path) -> None:
    names = ["ok", "slow", "missing", "huge", "page", "moved", "flaky"]
    products = [Product(id=f"P-{name}", image=f"{server}/{name}.jpg") for name in names]
    fetcher = _fetcher(tmp_path)
    results = fetcher.fetch_all(products, progress=False)
    ok = results["P-ok"]
    assert ok.error is None and Path(ok.path).read_bytes() == JPEG
    assert Path(ok.path).parent == tmp_path / "cache"
    assert "gave up after 3 attempts" in results["P-slow"].error
    assert "HTTP 404" in results["P-missing"].error
    assert HITS["/missing.jpg"] == 1  # a 404 is not retried
    assert "cap" in results["P-huge"].error
    assert "not an image" in results["P-page"].error
    assert results["P-moved"].error is None
    assert results["P-flaky"].error is None and HITS["/flaky.jpg"] == 3
    for name in ("slow", "missing", "huge", "page"):
        assert results[f"P-{name}"].path is None
        assert not fetcher.cached_path(f"{server}/{name}.jpg").exists()
    assert not list((tmp_path / "cache").glob(".part-*"))


def test_rerun_uses_the_cache(server: str, tmp_path: Path) -> None:
    fetcher = _fetcher(tmp_path)
    product = Product(id="B000CACHE", image=f"{server}/ok.jpg")
    before = HITS["/ok.jpg"]
    assert not fetcher.fetch_one(product).cached
    again = fetcher.fetch_one(product)
    assert again.cached and again.error is None
    assert HITS["/ok.jpg"] == before + 1


def test_local_paths_and_odd_ids(tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(JPEG)
    fetcher = _fetcher(tmp_path)
    assert fetcher.fetch_one(Product(id="a", image=str(image))).path == str(image)
    assert "no such file" in fetcher.fetch_one(Product(id="b", image=str(tmp_path / "x.jpg"))).error
    assert "scheme" in fetcher.fetch_one(Product(id="c", image="ftp://host/x.jpg")).error
    assert cache_name("http://h/a.jpg") != cache_name("http://h/b.jpg")
    assert "/" not in cache_name("http://h/../../etc/passwd")


def test_cache_refetches_when_the_url_changes(server: str, tmp_path: Path) -> None:
    fetcher = _fetcher(tmp_path)
    first = fetcher.fetch_one(Product(id="B000MOVED", image=f"{server}/ok.jpg"))
    assert Path(first.path).read_bytes() == JPEG
    before = HITS["/other.jpg"]
    changed = fetcher.fetch_one(Product(id="B000MOVED", image=f"{server}/other.jpg"))
    assert not changed.cached and changed.path != first.path
    assert Path(changed.path).read_bytes() == OTHER_JPEG and HITS["/other.jpg"] == before + 1
    again = fetcher.fetch_one(Product(id="B000MOVED", image=f"{server}/other.jpg"))
    assert again.cached and again.path == changed.path and HITS["/other.jpg"] == before + 1


def test_an_unexpected_exception_is_a_failed_result(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(data: bytes, name: str) -> None:
        raise RuntimeError("decoder fell over")

    monkeypatch.setattr(fetch, "decode_image", broken)
    products = [Product(id="a", image=f"{server}/ok.jpg"), Product(id="b", image=f"{server}/other.jpg")]
    results = _fetcher(tmp_path).fetch_all(products, progress=False)
    assert {r.error for r in results.values()} == {"RuntimeError: decoder fell over"}
    assert all(r.path is None for r in results.values())


def test_interrupt_cancels_what_has_not_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []

    def fetch_picture(self: ImageFetcher, key: str, source: str) -> fetch.FetchResult:
        started.append(key)
        if key == "0":
            raise KeyboardInterrupt
        time.sleep(0.01)
        return fetch.FetchResult(key, "x")

    monkeypatch.setattr(ImageFetcher, "fetch_picture", fetch_picture)
    fetcher = ImageFetcher(tmp_path, FetchPolicy(workers=1))
    with pytest.raises(KeyboardInterrupt):
        fetcher.fetch_all([Product(id=str(n), image="x") for n in range(200)], progress=False)
    time.sleep(0.05)
    assert len(started) < 200

"""The fetcher against hostile URLs: slow drips, internal addresses, redirects to them.

Only a server on 127.0.0.1 is ever contacted; every other address is refused before any connection.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from firs.catalog import fetch
from firs.catalog.fetch import FetchPolicy, ImageFetcher, address_refusal, download
from firs.catalog.product import Product
from firs.errors import FetchError

from .conftest import jpeg_bytes

JPEG = jpeg_bytes(Image.new("RGB", (32, 32), "red"))
HITS: Counter[str] = Counter()
DRIP_SECONDS = 0.3
DRIP_BYTES = 30  # bounds each drip at 9 s, long after the client gave up


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        HITS[self.path] += 1
        port = self.server.server_address[1]
        if self.path == "/ok.jpg":
            self._send_head(200, len(JPEG))
            self.wfile.write(JPEG)
        elif self.path == "/drip-body.jpg":
            self._send_head(200, 10_000)
            self._drip(b"\xff" * DRIP_BYTES)
        elif self.path == "/drip-head.jpg":
            self._drip(b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n" + b"X" * DRIP_BYTES)
        elif self.path == "/to-refused.jpg":
            self._redirect(f"http://127.0.0.2:{port}/ok.jpg")
        elif self.path == "/to-file.jpg":
            self._redirect("file:///etc/passwd")
        elif self.path == "/to-ok.jpg":
            self._redirect("/ok.jpg")
        elif self.path.startswith("/loop"):
            self._redirect(f"/loop{int(self.path[5:] or 0) + 1}")
        else:
            self._send_head(404, 0)

    def _send_head(self, code: int, length: int) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _drip(self, data: bytes) -> None:
        for byte in data:
            try:
                self.wfile.write(bytes([byte]))
            except OSError:
                return  # the client gave up
            time.sleep(DRIP_SECONDS)


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.1 counts as public (the test server), 127.0.0.2 does not, everything else as usual."""
    real = fetch.address_refusal

    def refusal(ip: object) -> str | None:
        if str(ip) == "127.0.0.1":
            return None
        if str(ip) == "127.0.0.2":
            return "a loopback address"
        return real(ip)  # type: ignore[arg-type]

    monkeypatch.setattr(fetch, "address_refusal", refusal)


def _refused(url: str, policy: FetchPolicy | None = None) -> str:
    """The error downloading `url` gives, checking it was not retried."""
    sleeps: list[float] = []
    with pytest.raises(FetchError) as caught:
        download(url, policy or FetchPolicy(timeout=1, deadline=2), sleep=sleeps.append)
    assert sleeps == []
    return str(caught.value)


@pytest.mark.parametrize("path", ["/drip-body.jpg", "/drip-head.jpg"])
def test_a_drip_feed_hits_the_deadline(server: str, loopback_is_public: None, path: str) -> None:
    policy = FetchPolicy(timeout=5, deadline=1, retries=1, backoff=0.05)
    start = time.monotonic()
    with pytest.raises(FetchError, match=r"download took over the 1 s deadline \(gave up after 2 attempts\)"):
        download(f"{server}{path}", policy)
    assert time.monotonic() - start < 2 * policy.deadline + 1.0
    assert HITS[path] == 2


def test_a_loopback_url_is_refused_by_default(server: str) -> None:
    error = _refused(f"{server}/ok.jpg")
    assert error == "refused: 127.0.0.1 is a loopback address (allow with --allow-private-urls)"
    assert HITS["/ok.jpg"] == 0


def test_allow_private_permits_loopback(server: str) -> None:
    assert download(f"{server}/ok.jpg", FetchPolicy(allow_private=True)) == JPEG


def test_a_redirect_to_a_refused_address_is_refused(server: str, loopback_is_public: None) -> None:
    assert download(f"{server}/to-ok.jpg", FetchPolicy()) == JPEG
    error = _refused(f"{server}/to-refused.jpg")
    assert error == "refused: 127.0.0.2 is a loopback address (allow with --allow-private-urls)"
    assert HITS["/to-refused.jpg"] == 1


def test_redirects_are_limited(server: str, loopback_is_public: None) -> None:
    assert "more than 5 redirects" in _refused(f"{server}/loop")
    assert HITS["/loop5"] == 1 and HITS["/loop6"] == 0


def test_a_redirect_to_another_scheme_is_refused(server: str, loopback_is_public: None) -> None:
    assert "unsupported URL scheme in 'file:///etc/passwd'" in _refused(f"{server}/to-file.jpg")


def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        public = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))
        private = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))
        return [public, private]  # one bad address is enough

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    error = _refused("http://example.internal/a.jpg")
    assert (
        error == "refused: example.internal resolves to 10.0.0.5, a private address (allow with --allow-private-urls)"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:9/a.jpg", "a loopback address"),
        ("http://[::1]:9/a.jpg", "a loopback address"),
        ("http://[::ffff:127.0.0.1]:9/a.jpg", "a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
        ("https://10.1.2.3/a.jpg", "a private address"),
        ("http://0.0.0.0:9/a.jpg", "an unspecified address"),
    ],
)
def test_internal_hosts_are_refused(url: str, reason: str) -> None:
    error = _refused(url)
    assert error.startswith("refused: ") and reason in error and "--allow-private-urls" in error


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("10.0.0.5", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("224.0.0.1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("240.0.0.1", "a reserved address"),
        ("::1", "a loopback address"),
        ("::", "an unspecified address"),
        ("fe80::1", "a link-local address"),
        ("fd00::1", "a private address"),
        ("ff02::1", "a multicast address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a link-local address"),
        ("::ffff:10.0.0.5", "a private address"),
        ("2002:a00:5::", "a private address"),  # 6to4 for 10.0.0.5
        ("64:ff9b::a9fe:a9fe", "a link-local address"),  # NAT64 for 169.254.169.254
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_address_refusal(address: str, reason: str | None) -> None:
    assert address_refusal(address) == reason


def test_the_fetcher_reports_a_refusal(tmp_path: Path) -> None:
    result = ImageFetcher(tmp_path).fetch_one(Product(id="p", image="http://169.254.169.254/x.jpg"))
    assert result.path is None and "169.254.169.254 is a link-local address" in result.error

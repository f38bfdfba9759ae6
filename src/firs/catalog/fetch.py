"""Getting each product's image onto local disk: local paths checked, URLs downloaded.

Catalogue URLs can come from third parties, so they are treated as hostile input:

- Each download attempt has a total deadline (connect, headers, body, across redirects); every socket
  operation waits at most min(timeout, time left), so a server dripping bytes cannot hold the build.
- A host is resolved once, every address it resolves to must be public (see `address_refusal`), and
  the connection goes to that checked address, so DNS rebinding cannot switch it. HTTPS still verifies
  the certificate against the host name. Redirects are followed by hand, at most MAX_REDIRECTS, each
  new location checked by the same rule. `FetchPolicy.allow_private` turns the address check off.
- Requests carry only a User-Agent (no cookies, no credentials, no proxy); http.client caps the
  header sizes, the body is capped by the declared and the actual size.

Transient failures (timeouts, the deadline, connection errors, 429/5xx) are retried with exponential
backoff; anything else fails at once. A downloaded image must decode before it lands, atomically, in
an on-disk cache keyed by its URL, so a re-run skips what is already there and a changed URL is
fetched again. Downloads run concurrently; one product's failure, whatever it is, is its own result.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import io
import ipaddress
import os
import socket
import ssl
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import FetchError, ImageError
from ..vision.decode import MAX_BYTES, check_file, decode_image
from .product import Product

USER_AGENT = "firs-catalog-fetcher/0.1"
MAX_REDIRECTS = 5
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
# Printable ASCII that may stay as it is in a request target; anything else is percent-encoded.
_URL_SAFE = "!#$%&'()*+,-./:;=?@[]~_"
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FetchPolicy:
    timeout: float = 10.0  # seconds any one socket operation may wait
    retries: int = 3
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_bytes: int = MAX_BYTES
    workers: int = 16
    deadline: float = 60.0  # seconds one download attempt may take in all, redirects included
    allow_private: bool = False  # allow loopback, private, link-local... addresses (a catalogue on the LAN)


@dataclass(frozen=True)
class FetchResult:
    product_id: str
    path: str | None  # local image file, None when failed
    error: str | None = None
    cached: bool = False


def cache_name(url: str) -> str:
    """The cache's file name for an image URL: a hash of the URL, so a changed URL is a new file."""
    return hashlib.sha256(url.encode()).hexdigest()[:32] + ".img"


def address_refusal(ip: IPAddress | str) -> str | None:
    """Why a download may not connect to `ip` (e.g. "a private address"), or None when it is public."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip)
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return address_refusal(embedded)
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _SHARED_ADDRESS_SPACE:
        return "a shared (carrier-grade NAT) address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
        return "a private address"
    if not ip.is_global:
        return "a non-public address"
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, 6to4, NAT64), which is what gets reached."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class _Transient(Exception):
    """A failure worth retrying."""


class _Deadline:
    """The end of one download attempt."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def socket_timeout(self, timeout: float) -> float:
        """How long the next socket operation may wait: min(timeout, time left); TimeoutError when none is."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return min(timeout, left)


@dataclass(frozen=True)
class _Target:
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    port: int
    tls: bool
    path: str  # request target: path and query


def _parse(url: str) -> _Target:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError(f"bad URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"unsupported URL scheme in {url!r} (http or https)")
    if not parts.hostname:
        raise FetchError(f"no host in URL {url!r}")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise FetchError(f"bad host name in URL {url!r}") from None
    path = urllib.parse.quote(parts.path or "/", safe=_URL_SAFE)
    if parts.query:
        path += "?" + urllib.parse.quote(parts.query, safe=_URL_SAFE)
    tls = parts.scheme == "https"
    return _Target(host, port or (443 if tls else 80), tls, path)


_Address = tuple[socket.AddressFamily, tuple[Any, ...]]


def _refusal_message(host: str, address: str, reason: str) -> str:
    where = f"{host} is" if host == address else f"{host} resolves to {address},"
    return f"refused: {where} {reason} (allow with --allow-private-urls)"


def _resolve(host: str, port: int, allow_private: bool) -> list[_Address]:
    """The addresses to connect to, every one checked; FetchError when any of them is refused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _Transient(f"cannot resolve {host}: {exc.strerror}") from None
    addresses: list[_Address] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if not allow_private:
            reason = _refusal(str(sockaddr[0]))
            if reason is not None:
                raise FetchError(_refusal_message(host, str(sockaddr[0]), reason))
        addresses.append((family, sockaddr))
    if not addresses:
        raise _Transient(f"cannot resolve {host}: no addresses")
    return addresses


def _refusal(address: str) -> str | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "an address that cannot be checked"
    return address_refusal(ip)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()  # verifies certificates and host names


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each waiting at most min(timeout, time left), so a drip feed cannot outlast
    the deadline (a plain socket timeout restarts with every byte)."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, deadline: _Deadline, timeout: float) -> None:
        self._raw, self._sock, self._deadline, self._timeout = raw, sock, deadline, timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._deadline.socket_timeout(self._timeout))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, deadline: _Deadline, timeout: float, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        # The socket's raw reader (it keeps the socket open for this response), read under the deadline.
        self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, deadline, timeout))


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to addresses checked beforehand: no DNS lookup of its own. TLS verifies
    the certificate against (and sends SNI for) the host name; every socket operation obeys the deadline."""

    def __init__(self, target: _Target, addresses: list[_Address], deadline: _Deadline, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.default_port = 443 if target.tls else 80  # the Host header leaves the default port out
        self._tls = target.tls
        self._addresses = addresses
        self._deadline = deadline
        self.response_class = functools.partial(_DeadlineResponse, deadline=deadline, timeout=timeout)  # type: ignore[assignment]

    def connect(self) -> None:
        error: OSError | None = None
        for family, sockaddr in self._addresses:
            try:
                self.sock = self._connect(family, sockaddr)
                return
            except OSError as exc:
                error = exc
        assert error is not None
        raise error

    def _connect(self, family: socket.AddressFamily, sockaddr: tuple[Any, ...]) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self._deadline.socket_timeout(self.timeout))
            sock.connect(sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls:
                sock.settimeout(self._deadline.socket_timeout(self.timeout))
                return _tls_context().wrap_socket(sock, server_hostname=self.host)
            return sock
        except BaseException:
            sock.close()
            raise


def _check_status(response: http.client.HTTPResponse) -> None:
    if 200 <= response.status < 300:
        return
    if response.status == 429 or response.status >= 500:
        raise _Transient(f"HTTP {response.status}")
    raise FetchError(f"HTTP {response.status} {response.reason}")


def _read_body(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"{declared} bytes is over the {max_bytes}-byte cap")
    data = bytearray()
    while chunk := response.read1(min(_CHUNK, max_bytes + 1 - len(data))):
        data += chunk
        if len(data) > max_bytes:
            raise FetchError(f"over the {max_bytes}-byte cap")
    if response.length:  # bytes the server declared but did not send before closing
        raise _Transient(f"connection closed after {len(data)} of {declared} bytes")
    return bytes(data)


def _redirect(url: str, response: http.client.HTTPResponse) -> str:
    location = response.getheader("Location")
    if not location:
        raise FetchError(f"HTTP {response.status} without a Location")
    return urllib.parse.urljoin(url, location.strip())


def _get(url: str, policy: FetchPolicy, deadline: _Deadline) -> bytes:
    """The body at `url`, following redirects, each location checked like the first."""
    for _ in range(MAX_REDIRECTS + 1):
        target = _parse(url)
        addresses = _resolve(target.host, target.port, policy.allow_private)
        connection = _PinnedConnection(target, addresses, deadline, policy.timeout)
        try:
            connection.request("GET", target.path, headers={"User-Agent": USER_AGENT, "Connection": "close"})
            with connection.getresponse() as response:
                if response.status not in _REDIRECT_CODES:
                    _check_status(response)
                    return _read_body(response, policy.max_bytes)
                url = _redirect(url, response)
        finally:
            connection.close()
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def _download(url: str, policy: FetchPolicy) -> bytes:
    """One attempt, within the policy's deadline."""
    deadline = _Deadline(policy.deadline)
    try:
        return _get(url, policy, deadline)
    except OSError as exc:  # timeouts, connection and TLS errors
        if deadline.expired():
            raise _Transient(f"download took over the {policy.deadline:g} s deadline") from None
        raise _Transient(f"{exc.__class__.__name__}: {exc}") from None
    except http.client.IncompleteRead as exc:
        raise _Transient(f"connection closed early: {exc!r}") from None
    except http.client.HTTPException as exc:  # a malformed response, over-long headers, too many headers
        raise FetchError(f"bad HTTP response: {exc.__class__.__name__}: {exc}") from None


def download(url: str, policy: FetchPolicy, sleep: Callable[[float], None] = time.sleep) -> bytes:
    """The bytes at `url`, retrying transient failures; FetchError when it gives up."""
    delay = policy.backoff
    for attempt in range(policy.retries + 1):
        try:
            return _download(url, policy)
        except _Transient as exc:
            if attempt == policy.retries:
                raise FetchError(f"{exc} (gave up after {attempt + 1} attempts)") from None
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ImageFetcher:
    """Resolves products' images to checked local files, downloading into `cache_dir`."""

    def __init__(self, cache_dir: Path, policy: FetchPolicy | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.policy = policy or FetchPolicy()

    def cached_path(self, url: str) -> Path:
        return self.cache_dir / cache_name(url)

    def fetch_one(self, product: Product) -> FetchResult:
        """The product's (main) image as a local file, or a failed result; never raises an Exception."""
        return self.fetch_picture(product.id, product.image)

    def fetch_picture(self, key: str, source: str) -> FetchResult:
        """One picture (URL or local path) as a local file, or a failed result under `key`."""
        try:
            if source.startswith(("http://", "https://")):
                target = self.cached_path(source)
                if target.exists():
                    return FetchResult(key, str(target), cached=True)
                data = download(source, self.policy)
                decode_image(data, source)
                _write_atomic(target, data)
                return FetchResult(key, str(target))
            if "://" in source:
                raise FetchError(f"unsupported URL scheme in {source!r} (http, https or a local path)")
            check_file(source)  # decoded once, later, by the embedding stage
            return FetchResult(key, source)
        except (FetchError, ImageError) as exc:
            return FetchResult(key, None, str(exc))
        except Exception as exc:  # one bad product must not abort the build
            return FetchResult(key, None, f"{exc.__class__.__name__}: {exc}")

    def fetch_all(self, products: list[Product], progress: bool = True) -> dict[str, FetchResult]:
        """Every product's main image, keyed by product id, fetched concurrently."""
        return self.fetch_pictures([(p.id, p.image) for p in products], progress)

    def fetch_pictures(
        self, items: Sequence[tuple[str, str]], progress: bool = True, desc: str = "fetch images"
    ) -> dict[str, FetchResult]:
        """(key, source) pictures as local files, keyed by `key`, fetched concurrently."""
        results: dict[str, FetchResult] = {}
        pool = ThreadPoolExecutor(max_workers=self.policy.workers)
        try:
            futures = [pool.submit(self.fetch_picture, key, source) for key, source in items]
            done = as_completed(futures)
            with tqdm(done, total=len(futures), desc=desc, unit="img", disable=not progress) as bar:
                for future in bar:
                    result = future.result()
                    results[result.product_id] = result
        except BaseException:
            # Ctrl-C: drop what has not started; running downloads end within their deadline.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return results

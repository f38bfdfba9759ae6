"""Getting each product's image onto local disk: local paths checked, URLs downloaded.

Downloads run concurrently with a timeout, retries with exponential backoff on
transient failures (timeouts, connection errors, 429/5xx), a size cap, and a decode
check. Downloaded images land in an on-disk cache named by product id, so a re-run
skips what is already there.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import FetchError, ImageError
from ..vision.decode import MAX_BYTES, check_file, decode_image
from .product import Product

USER_AGENT = "firs-catalog-fetcher/0.1"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


@dataclass(frozen=True)
class FetchPolicy:
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_bytes: int = MAX_BYTES
    workers: int = 16


@dataclass(frozen=True)
class FetchResult:
    product_id: str
    path: str | None  # local image file, None when failed
    error: str | None = None
    cached: bool = False


def cache_name(product_id: str) -> str:
    """A file name for a product id: the id itself when safe (ASINs are), else a hash."""
    if _SAFE_ID.match(product_id) and product_id not in (".", ".."):
        return product_id
    return "id-" + hashlib.sha256(product_id.encode()).hexdigest()[:32]


class _Transient(Exception):
    """A failure worth retrying."""


def _download(url: str, policy: FetchPolicy) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=policy.timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                raise FetchError(f"{declared} bytes is over the {policy.max_bytes}-byte cap")
            data = response.read(policy.max_bytes + 1)
            if len(data) > policy.max_bytes:
                raise FetchError(f"over the {policy.max_bytes}-byte cap")
            return data
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise _Transient(f"HTTP {exc.code}") from None
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    except (TimeoutError, ConnectionError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, str) or not isinstance(exc, urllib.error.URLError):
            raise _Transient(f"{exc.__class__.__name__}: {reason}") from None
        raise _Transient(str(reason)) from None


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

    def cached_path(self, product_id: str) -> Path:
        return self.cache_dir / f"{cache_name(product_id)}.img"

    def fetch_one(self, product: Product) -> FetchResult:
        source = product.image
        try:
            if source.startswith(("http://", "https://")):
                target = self.cached_path(product.id)
                if target.exists():
                    return FetchResult(product.id, str(target), cached=True)
                data = download(source, self.policy)
                decode_image(data, source)
                _write_atomic(target, data)
                return FetchResult(product.id, str(target))
            if "://" in source:
                raise FetchError(f"unsupported URL scheme in {source!r} (http, https or a local path)")
            check_file(source)  # decoded once, later, by the embedding stage
            return FetchResult(product.id, source)
        except (FetchError, ImageError) as exc:
            return FetchResult(product.id, None, str(exc))

    def fetch_all(self, products: list[Product], progress: bool = True) -> dict[str, FetchResult]:
        """Every product's result, keyed by id, fetched concurrently."""
        results: dict[str, FetchResult] = {}
        with ThreadPoolExecutor(max_workers=self.policy.workers) as pool:
            futures = [pool.submit(self.fetch_one, product) for product in products]
            bar = tqdm(as_completed(futures), total=len(futures), desc="fetch images", unit="img", disable=not progress)
            for future in bar:
                result = future.result()
                results[result.product_id] = result
        return results

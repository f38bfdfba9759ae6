"""The admin API: change the served catalogue without a restart.

    POST   /api/products          a JSON list of products (image URLs), or multipart: a CSV
                                  catalogue (field `catalog`) and the pictures it names (`images`)
    DELETE /api/products/{id}
    POST   /api/reload            follow the index now (changes made by the CLI or a replica)
    POST   /api/compact           fold the changes into a new index version

Every admin route needs `Authorization: Bearer KEY`. With no key configured the routes do
not exist (404); a missing key is 401, a wrong one 403, logged with the client's address and
never the key. The writes run one at a time on their own thread (never in the search
workers) through the same functions as `firs add`/`remove`/`compact`; when one returns, this
process already answers from the changed catalogue, and other processes within a second.
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import json
import logging
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from ..errors import FirsError
from ..index.writer_lock import IndexBusy
from ..pipeline.compact import compact
from ..pipeline.live_update import AddOptions, add_products, remove_products
from .follow import IndexFollower
from .guards import send_error
from .schema import ApiError, error_responses

MAX_PRODUCTS = 1000  # per request
SUB_RESOURCES = ("/image", "/similar")  # what the product routes put after an id
ADMIN_OFF = "the admin API is off: start `firs serve` with --admin-key-file FILE or FIRS_ADMIN_KEY"
MIN_KEY_LENGTH = 16
_FIXED_FIELDS = ("id", "image", "title", "brand", "category", "price")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
log = logging.getLogger("firs.service")


def read_admin_key(key_file: Path | None, environment: dict[str, str]) -> str | None:
    """The admin key from a file (first line) or FIRS_ADMIN_KEY; None when neither is set."""
    if key_file is not None:
        try:
            lines = key_file.read_text().strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise FirsError(f"--admin-key-file {key_file}: cannot read it ({exc})") from None
        key, where = (lines[0].strip() if lines else ""), str(key_file)
    else:
        key, where = environment.get("FIRS_ADMIN_KEY", "").strip(), "FIRS_ADMIN_KEY"
        if not key:
            return None
    if len(key) < MIN_KEY_LENGTH:
        raise FirsError(f"the admin key in {where} is shorter than {MIN_KEY_LENGTH} characters; use a long random one")
    return key


def _catalogue_from_json(products: Any, folder: Path) -> Path:
    """A JSON list of product objects as a CSV catalogue `firs add` reads."""
    if not isinstance(products, list) or not products:
        raise ApiError(422, "the body must be a non-empty JSON list of products ({id, image, ...})")
    if len(products) > MAX_PRODUCTS:
        raise ApiError(413, f"{len(products)} products in one request; at most {MAX_PRODUCTS}")
    fields: dict[str, None] = dict.fromkeys(_FIXED_FIELDS)
    for number, product in enumerate(products):
        if not isinstance(product, dict):
            raise ApiError(422, f"product {number}: not a JSON object")
        for name in ("id", "image"):
            if not isinstance(product.get(name), str) or not product[name].strip():
                raise ApiError(422, f"product {number}: field {name!r} must be a non-empty string")
        fields.update(dict.fromkeys(str(k) for k in product))
    path = folder / "catalog.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(fields))
        writer.writeheader()
        for product in products:
            writer.writerow(
                {k: v if isinstance(v, str | int | float) or v is None else json.dumps(v) for k, v in product.items()}
            )
    return path


async def _catalogue_from_form(request: Request, folder: Path) -> Path:
    """A multipart CSV catalogue and the pictures it names, saved side by side."""
    form = await request.form()
    catalogue = form.get("catalog")
    if catalogue is None or isinstance(catalogue, str):
        raise ApiError(422, "multipart upload without a file field 'catalog' (a CSV catalogue)")
    path = folder / "catalog.csv"
    path.write_bytes(await catalogue.read())
    for picture in form.getlist("images"):
        if isinstance(picture, str) or not picture.filename:
            continue
        name = _SAFE_NAME.sub("_", Path(picture.filename).name)
        if name.startswith(".") or name == "catalog.csv":
            raise ApiError(422, f"picture file name {picture.filename!r} is not allowed")
        (folder / name).write_bytes(await picture.read())
    return path


class _AdminOff:
    """ASGI middleware: the admin routes answer 404 and a word on how to turn them on. Plain ASGI:
    as an `@app.middleware("http")` it wrapped every request in streams and tasks, which cost the
    event loop more than the rest of a search request's handling."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if (method == "POST" and path in ("/api/products", "/api/reload", "/api/compact")) or (
                method == "DELETE" and path.startswith("/api/products/") and not path.endswith(SUB_RESOURCES)
            ):
                await send_error(send, 404, ADMIN_OFF)
                return
        await self.app(scope, receive, send)


def add_disabled_admin_routes(app: FastAPI) -> None:
    """With no admin key the admin routes are off: 404 and a word on how to turn them on. Checked
    before routing (no route is added), so the product routes' Allow headers stay as documented."""
    app.add_middleware(_AdminOff)


def _client_words(message: str, upload: Path | None) -> str:
    """An error of `firs add` as an API client should read it: an image path that is not one of
    the uploaded pictures is named as such, and this machine's scratch folder is not shown."""
    if upload is None:
        return message
    message = re.sub(
        r"image path (\S+) is outside the catalogue's folder .*?\(allow other folders with --image-root DIR\)",
        r"image \1 is neither an uploaded picture (multipart field 'images') nor an http(s) URL",
        message,
    )
    return message.replace(f"{upload}/", "").replace(str(upload), "the upload")


def add_admin_routes(
    app: FastAPI, follower: IndexFollower, index: Path, key: str, options: AddOptions | None = None
) -> Callable[[], None]:
    """The admin routes on `app`, writing to `index`; returns a function that stops their thread."""
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="firs-admin")
    secret = key.encode()

    def authorise(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        client = request.client.host if request.client else "unknown"
        if scheme.lower() != "bearer" or not given.strip():
            log.warning("admin %s %s refused: no bearer key (from %s)", request.method, request.url.path, client)
            raise ApiError(401, "this route needs Authorization: Bearer KEY", headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.strip().encode(), secret):
            log.warning("admin %s %s refused: wrong key (from %s)", request.method, request.url.path, client)
            raise ApiError(403, "the admin key is wrong")

    async def write(fn: Callable[[], Any], upload: Path | None = None) -> Any:
        try:
            result = await asyncio.get_running_loop().run_in_executor(writer, fn)
        except IndexBusy as exc:
            raise ApiError(409, str(exc)) from None
        except FirsError as exc:  # in the client's words: its upload, not this machine's folders
            raise ApiError(422, _client_words(str(exc), upload)) from None
        await asyncio.get_running_loop().run_in_executor(writer, follower.check)
        return result

    @app.post(
        "/api/products",
        summary="Add or update products (admin): a JSON list, or multipart `catalog` CSV + `images`",
        responses=error_responses(400, 401, 403, 409, 413, 422),
    )
    async def add(request: Request) -> dict[str, Any]:
        authorise(request)
        with tempfile.TemporaryDirectory(prefix="firs-admin-") as tmp:
            folder = Path(tmp)
            kind = request.headers.get("content-type", "")
            if kind.startswith("multipart/form-data"):
                catalogue = await _catalogue_from_form(request, folder)
            else:
                try:
                    body = json.loads(await request.body())
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise ApiError(400, f"the body is not JSON ({exc})") from None
                catalogue = _catalogue_from_json(body, folder)
            base = options or AddOptions()
            add_options = AddOptions(
                fetch=base.fetch, cache_dir=base.cache_dir, image_roots=[folder], progress=False, threads=base.threads
            )
            report = await write(lambda: add_products(index, [catalogue], add_options), folder)
        log.info("admin added %d, updated %d products", len(report.added), len(report.updated))
        return {
            "added": report.added,
            "updated": report.updated,
            "failed": report.failures,
            "problems": [str(p) for p in report.problems],
            "seconds": round(report.seconds, 2),
            "index": follower.version,
        }

    @app.delete(
        "/api/products/{product_id:path}",
        summary="Remove a product (admin)",
        responses=error_responses(401, 403, 404, 409, 422),
    )
    async def remove(request: Request, product_id: str) -> dict[str, Any]:
        if product_id.endswith(SUB_RESOURCES):  # /api/products/X/image is X's picture, as for GET
            raise ApiError(405, "Method Not Allowed", headers={"Allow": "GET"})
        authorise(request)
        report = await write(lambda: remove_products(index, [product_id]))
        if report.unknown:
            raise ApiError(404, f"no product {product_id!r} in this index")
        log.info("admin removed %s", product_id)
        return {"removed": report.removed, "index": follower.version}

    @app.post("/api/reload", summary="Follow the index now (admin)", responses=error_responses(401, 403))
    async def reload(request: Request) -> dict[str, Any]:
        authorise(request)
        changed = await asyncio.get_running_loop().run_in_executor(writer, follower.check)
        return {"changed": changed, "index": follower.version, "products": len(follower.engine)}

    @app.post(
        "/api/compact",
        summary="Fold changes made in place into a new index version (admin)",
        responses=error_responses(401, 403, 409, 422),
    )
    async def compact_index(request: Request) -> dict[str, Any]:
        authorise(request)
        report = await write(lambda: compact(index))
        if report is None:
            return {"compacted": False, "index": follower.version}
        return {
            "compacted": True,
            "products": report.products,
            "folded": report.folded,
            "dropped": report.dropped,
            "seconds": round(report.seconds, 2),
            "index": follower.version,
        }

    return lambda: writer.shutdown(wait=False, cancel_futures=True)

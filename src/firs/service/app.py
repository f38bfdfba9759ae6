"""`firs serve`: the JSON API and the web page, on FastAPI + uvicorn.

Every search runs in the bounded worker pool (service/pool.py), never on the event loop;
answers to a repeated photo come from the cache (service/cache.py). Errors are JSON
{"error", "detail"} with the status that names the problem: 413 too large, 415 not an
image, 422 a bad parameter, 404 an unknown product, 503 busy (with Retry-After).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from .. import __version__
from ..catalog.store import FACET_VALUES
from ..errors import ImageError, QueryError
from ..index.images import DISPLAY_SIDE
from ..runtime import release_memory
from ..search import engine as search
from ..search.filters import PATTERN as WHERE_PATTERN
from ..search.filters import parse_where
from ..vision.compiled_net import search_running
from ..vision.decode import sniff_media_type
from .admin import add_admin_routes, add_disabled_admin_routes
from .cache import LruCache, cache_key
from .follow import INTERVAL_S, IndexFollower
from .guards import BodyLimit, HostCheck
from .pool import BoundedPool, Busy
from .schema import ApiError, ErrorBody, error_responses

STATIC = Path(__file__).parent / "static"
THUMBNAIL_SIDES = (128, 256, DISPLAY_SIDE)
THUMBNAILS_KEPT = 2048  # product thumbnails kept in memory
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
log = logging.getLogger("firs.service")


@dataclass
class ServiceOptions:
    workers: int = 1
    queue: int = 8  # requests that may wait for a worker before 503
    cache_size: int = 256
    max_upload_bytes: int = 10 * 1024 * 1024
    retry_after_s: int = 1
    allowed_hosts: tuple[str, ...] = ("*",)  # Host headers answered (serve() narrows it)
    follow_interval: float = INTERVAL_S  # seconds between looks at the index for changes; 0: never
    admin_key: str | None = None  # the admin routes' bearer key; None: no admin routes (service/admin.py)
    currency: str | None = None  # ISO 4217 code of prices whose product names no `currency`


Filter = Annotated[str, StringConstraints(pattern=WHERE_PATTERN, max_length=200)]


class TextSearch(BaseModel):
    text: str = Field(min_length=1, max_length=500, pattern=r"\w", description="words; at least one letter or digit")
    top_k: int = Field(default=10, ge=1, le=search.MAX_K)
    where: list[Filter] = Field(default_factory=list, description="FIELD=VALUE, FIELD!=VALUE, price<=N, price>=N")


def _error(status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def _thumbnail(jpeg: bytes, side: int) -> bytes:
    """A stored product picture scaled to at most `side` pixels, as JPEG."""
    with Image.open(io.BytesIO(jpeg)) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def create_app(
    engine: search.SearchEngine, options: ServiceOptions | None = None, follow: Path | None = None
) -> FastAPI:
    """The service over `engine`; `follow`: the index path to follow to new versions (serve's)."""
    options = options or ServiceOptions()
    follower = IndexFollower(engine, follow, options.follow_interval)

    def current() -> search.SearchEngine:
        return follower.engine

    pool = BoundedPool(options.workers, options.queue, on_idle=release_memory)
    cache: LruCache[str, dict[str, Any]] = LruCache(options.cache_size)
    thumbnails: LruCache[tuple[str, int], bytes] = LruCache(THUMBNAILS_KEPT)  # by picture tag
    started = time.time()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Models loaded and first-call costs paid before the first client, in every worker thread
        # (each makes its own inference requests on its first inference). Once, then the rest at
        # once: started together, every worker loaded the pose networks itself (start-up 4.0 -> 5.5 s).
        await pool.run(current().warm_up)
        await asyncio.gather(*(pool.run(current().warm_up) for _ in range(options.workers - 1)))
        if options.follow_interval > 0:
            follower.start()
        yield
        follower.stop()
        stop_admin()
        pool.shutdown()

    app = FastAPI(
        title="FIRS",
        version=__version__,
        description="Street-to-shop fashion search: upload a photo, get the matching products. "
        "Every error is JSON {error, detail}.",
        lifespan=lifespan,
        responses={422: {"model": ErrorBody, "description": "a bad parameter or an unusable image"}},
    )

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")} for e in exc.errors()
        ]
        first = problems[0] if problems else {"where": "request", "problem": "invalid"}
        return _error(422, f"bad parameter {first['where']}: {first['problem']}", problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI answers a body it cannot parse (a broken multipart upload) with 400.
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names the first route's methods; a path may have more
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        return _error(exc.status_code, str(exc.detail), None, headers)

    stop_admin: Callable[[], None] = lambda: None  # noqa: E731
    if options.admin_key and follow is not None:
        stop_admin = add_admin_routes(app, follower, follow, options.admin_key)
    else:
        add_disabled_admin_routes(app)
    app.add_middleware(BodyLimit, limit=options.max_upload_bytes + 65536)
    if "*" not in options.allowed_hosts:
        app.add_middleware(HostCheck, allowed=options.allowed_hosts)

    def counted(fn: Any) -> Any:
        with search_running():
            return fn()

    async def run(fn: Any) -> Any:
        try:
            return await pool.run(functools.partial(counted, fn))
        except Busy:
            raise ApiError(
                503,
                "busy: every search worker is taken and the queue is full; try again shortly",
                {"workers": pool.workers, "capacity": pool.capacity},
                {"Retry-After": str(options.retry_after_s)},
            ) from None
        except (ImageError, QueryError) as exc:
            raise ApiError(422, str(exc)) from None
        except Exception as exc:  # never a bare 500: say what failed, keep the trace in the log
            log.exception("search failed")
            raise ApiError(422, f"this request could not be processed ({exc.__class__.__name__}: {exc})") from None

    def conditions(where: list[str]) -> list[Any]:
        try:
            return [parse_where(text) for text in where]
        except QueryError as exc:
            raise ApiError(422, str(exc)) from None

    @app.post(
        "/api/search",
        summary="Search with a photo (multipart field `image`)",
        responses=error_responses(400, 413, 415, 422, 503),
    )
    async def search_photo(
        image: Annotated[UploadFile, File(description="the photo: JPEG, PNG, WebP, GIF, BMP or TIFF")],
        mode: Annotated[Literal["simple", "fine", "tag"], Query()] = "simple",
        top_k: Annotated[int, Query(ge=1, le=search.MAX_K)] = 10,
        region: Annotated[Literal["auto", "upper", "lower", "full", "feet"], Query()] = "auto",
        all_items: bool = False,
        text: Annotated[str | None, Query(max_length=500)] = None,
        where: Annotated[
            list[Filter] | None, Query(description="FIELD=VALUE, FIELD!=VALUE, price<=N, price>=N")
        ] = None,
    ) -> JSONResponse:
        data = await image.read(options.max_upload_bytes + 1)
        if len(data) > options.max_upload_bytes:
            raise ApiError(413, f"upload is over the {options.max_upload_bytes}-byte limit")
        if not data:
            raise ApiError(422, "the field 'image' is empty")
        media = sniff_media_type(data)
        if media is None:
            raise ApiError(
                415,
                "the upload is not an image FIRS can read (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF)",
                {"declared_type": image.content_type, "first_bytes": data[:8].hex()},
            )
        params = {"mode": mode, "top_k": top_k, "region": region, "all_items": all_items, "text": text}
        params["where"] = sorted(where or [])
        params["index"] = follower.version  # an answer is never served from an older catalogue
        key = cache_key(data, params)
        cached = cache.get(key)
        if cached is not None:
            return JSONResponse({**cached, "cached": True})
        query = search.Query(
            image=data,
            text=text,
            mode=mode,
            k=top_k,
            region=region,
            all_items=all_items,
            where=conditions(where or []),
        )
        answer = await run(lambda: current().search(query).as_dict())
        answer["image_type"] = media
        cache.put(key, answer)
        return JSONResponse({**answer, "cached": False})

    @app.post("/api/search/text", summary="Search by words", responses=error_responses(400, 422, 503))
    async def search_text(body: TextSearch) -> JSONResponse:
        query = search.Query(text=body.text, k=body.top_k, where=conditions(body.where))
        return JSONResponse(await run(lambda: current().search(query).as_dict()))

    def product_or_404(product_id: str) -> dict[str, Any]:
        record = current().store.get(product_id)
        if record is None:
            raise ApiError(404, f"no product {product_id!r} in this index")
        return record

    # Product ids may hold '/', so the id is a path parameter and the longer routes come first.
    @app.get(
        "/api/products/{product_id:path}/image",
        summary="A product's picture (size: longest side of a thumbnail)",
        responses={
            **error_responses(404, 422),
            200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
        },
        response_class=Response,
    )
    async def product_image(
        request: Request,
        product_id: str,
        size: Annotated[
            int | None, Query(description="128, 256 or 512 pixels", json_schema_extra={"enum": list(THUMBNAIL_SIDES)})
        ] = None,
    ) -> Response:
        if size is not None and size not in THUMBNAIL_SIDES:
            raise ApiError(422, f"bad parameter size: {size} (use {', '.join(map(str, THUMBNAIL_SIDES))})")
        product_or_404(product_id)
        picture = current().pictures.get(product_id)
        if picture is None:
            raise ApiError(404, f"product {product_id!r} has no picture in this index (its image failed at build)")
        # A product's picture changes when `firs add` updates it: the tag names the bytes, and
        # caches keep it a minute before asking again (304 when unchanged).
        tag = f'"{hashlib.blake2b(picture, digest_size=12).hexdigest()}-{size or 0}"'
        headers = {"Cache-Control": "public, max-age=60", "ETag": tag}
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=304, headers=headers)
        if size is None or size >= DISPLAY_SIDE:
            return Response(picture, media_type="image/jpeg", headers=headers)
        data = thumbnails.get((tag, size))
        if data is None:
            data = await run(lambda: _thumbnail(picture, size))
            thumbnails.put((tag, size), data)
        return Response(data, media_type="image/jpeg", headers=headers)

    @app.get(
        "/api/products/{product_id:path}/similar",
        summary="More like this product",
        responses=error_responses(404, 422, 503),
    )
    async def similar(
        product_id: str,
        top_k: Annotated[int, Query(ge=1, le=search.MAX_K)] = 10,
        where: Annotated[
            list[Filter] | None, Query(description="FIELD=VALUE, FIELD!=VALUE, price<=N, price>=N")
        ] = None,
    ) -> JSONResponse:
        product_or_404(product_id)
        if current().store.label_of(product_id) is None:
            raise ApiError(404, f"product {product_id!r} is not searchable (its image failed at build)")
        query = search.Query(like=product_id, k=top_k, where=conditions(where or []))
        return JSONResponse(await run(lambda: current().search(query).as_dict()))

    @app.get(
        "/api/products/{product_id:path}", summary="A product's metadata and labels", responses=error_responses(404)
    )
    async def product(product_id: str) -> JSONResponse:
        record = product_or_404(product_id)
        label = current().store.label_of(product_id)
        tags = current().store.tags_of([label]).get(label, []) if label is not None else []
        return JSONResponse({**record, "labels": tags})

    @app.get("/api/health", summary="Liveness")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "products": len(current())}

    @app.get(
        "/api/stats",
        summary="Catalogue size and filter choices (facets, prices, currency), manifest, uptime, cache, pool",
    )
    async def stats() -> dict[str, Any]:
        # No paths of this machine: the index's folder and catalogue files are the operator's business.
        manifest = {key: value for key, value in current().manifest.items() if key not in ("files", "sources")}
        # Beside the search workers, not in their pool: read once a catalogue version, the values
        # take seconds at a million products, and searches interleave with them (ProductStore.values).
        facets = await asyncio.to_thread(current().store.facets)
        return {
            "catalogue": {
                "indexed": len(current()),
                "products": current().store.count(),
                "facets": facets["fields"],
                "facet_limit": FACET_VALUES,  # a facet this long may have more values: type them
                "price": facets["price"],
                "currency": options.currency,
            },
            "index": {"manifest": manifest},
            "uptime_s": round(time.time() - started, 1),
            "cache": cache.stats(),
            "pool": {"workers": pool.workers, "capacity": pool.capacity, "in_flight": pool.in_flight},
            "refused_busy": pool.refused,
            "filters": sorted(current().store.fields),
        }

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods answered at the request's path by its most specific routes (a product id may
    hold '/', so `/api/products/{id}` also matches `/api/products/x/image`, which is the image's)."""
    routes = [
        route
        for route in app.router.routes
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE
    ]
    longest = max((len(route.path) for route in routes), default=0)
    return sorted({method for route in routes if len(route.path) == longest for method in route.methods})


def allowed_hosts(host: str, extra: list[str]) -> tuple[str, ...]:
    """Host headers to answer: the address served on and this machine's names, plus `extra`;
    any when listening on every interface and nothing else was named."""
    if host in ("0.0.0.0", "::", "") and not extra:
        return ("*",)
    return tuple(dict.fromkeys([host, *LOCAL_HOSTS, *extra]))


def serve(
    index_dir: Path,
    host: str,
    port: int,
    workers: int,
    extra_hosts: list[str] | None = None,
    admin_key: str | None = None,
    currency: str | None = None,
) -> None:
    import uvicorn

    from ..runtime import default_threads

    # The service's own lines (admin actions, refused keys, index switches) beside uvicorn's.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    logging.getLogger("firs").addHandler(handler)
    logging.getLogger("firs").setLevel(logging.INFO)
    # Every worker's inferences may run at once, each on its share of the cores (CompiledPiece).
    engine = search.SearchEngine(index_dir, threads=default_threads(), streams=workers)
    hosts = allowed_hosts(host, extra_hosts or [])
    options = ServiceOptions(workers=workers, allowed_hosts=hosts, admin_key=admin_key, currency=currency)
    app = create_app(engine, options, follow=index_dir)
    print(f"FIRS serving {index_dir} ({len(engine)} products) on http://{host}:{port}/  (API docs: /docs)")
    if hosts == ("*",):
        print("answering any Host header; name this server's public names with --allowed-host to refuse others")
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)

"""The API's error answers as the OpenAPI schema describes them: always {error, detail}."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_MEANINGS = {
    400: "the request body cannot be parsed (a broken multipart upload)",
    401: "an admin route without `Authorization: Bearer KEY`",
    403: "an admin route with the wrong key",
    404: "no such product in this index",
    409: "another writer is changing the index; try again when it is done",
    413: "the upload is over the size limit",
    415: "the upload is not an image FIRS reads",
    422: "a bad parameter or an unusable image",
    503: "every search worker is busy; retry after the seconds in Retry-After",
}


class ApiError(Exception):
    """An answer with an error status, as {error, detail} (the app's handler writes it)."""

    def __init__(self, status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


class ErrorBody(BaseModel):
    error: str
    detail: Any = None


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` entries of a route for these error statuses."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _MEANINGS[code]}
        if code == 503:
            entry["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
        out[code] = entry
    return out

"""ASGI guards in front of the app: request bodies capped while they stream in, and Host
headers checked.

A Content-Length over the limit is refused before the body is read; a body with no
length (chunked transfer) is counted as it arrives and refused the moment it passes the
limit, so nothing larger ever lands in memory or in a temporary file. A Host header the
service does not answer to (DNS rebinding against a server on localhost) gets a 400.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


class _TooLarge(Exception):
    pass


async def send_error(send: Any, status: int, error: str) -> None:
    body = json.dumps({"error": error, "detail": None}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HostCheck:
    """ASGI middleware: 400 {error, detail} for a Host header not in `allowed`."""

    def __init__(self, app: Any, allowed: tuple[str, ...]) -> None:
        self.app, self.allowed = app, {name.lower() for name in allowed}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in self.allowed:
                await send_error(send, 400, f"this server does not answer to the host {host!r}")
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: 413 {error, detail} for a body over `limit` bytes."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def _refuse(self, send: Any) -> None:
        await send_error(send, 413, f"request body is over the {self.limit}-byte limit")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await self._refuse(send)
            return
        received = 0
        over = started = False

        async def counted_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # the app's answer to the interrupted body (a parse error) is replaced
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counted_receive, guarded_send)
        if over and not started:
            await self._refuse(send)

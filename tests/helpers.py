"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import csv
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from PIL import Image, ImageEnhance


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(app: Any) -> Iterator[str]:
    """The app served by uvicorn on a free localhost port, in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def transformed_copy(path: Path, out: Path) -> Path:
    """The product photographed differently: cropped, smaller, darker, JPEG-compressed."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    image = image.crop((int(w * 0.06), int(h * 0.04), int(w * 0.97), int(h * 0.95)))
    image = ImageEnhance.Brightness(image.resize((180, 170))).enhance(0.85)
    image.save(out, "JPEG", quality=80)
    return out


def catalog_ids(catalog: Path) -> list[str]:
    with catalog.open() as handle:
        return [row["id"] for row in csv.DictReader(handle)]

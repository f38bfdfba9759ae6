"""Helpers shared by the HTTP benchmarks (load_http.py, burst_memory.py, http_latency.py): a free loopback
port, a multipart/form-data upload body, `firs serve` as a subprocess (start, wait until healthy, stop) and
memory readings from /proc.

Standard library only, and no locust: load_http.py imports locust, which monkey-patches the standard
library with gevent on import; the other scripts must not pay for that. The scripts are run as
`python bench/X.py`, so bench/ is on sys.path and `from serving import ...` works.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def multipart_image(data: bytes, filename: str = "q.jpg", content_type: str = "image/jpeg") -> tuple[bytes, str]:
    """A multipart/form-data body holding `data` as the `image` field; returns (body, Content-Type header)."""
    boundary = f"firs{uuid.uuid4().hex}"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def start_server(
    index: Path, port: int, workers: int | None, log: Any, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`firs serve` (beside this interpreter) on 127.0.0.1:port; stdout and stderr go to `log` (a file
    opened for writing, or subprocess.DEVNULL); `--workers` only when given; `env`: its environment
    (default this process's)."""
    firs = Path(sys.executable).parent / "firs"
    extra = [] if workers is None else ["--workers", str(workers)]
    command = [str(firs), "serve", "--index", str(index), "--host", "127.0.0.1", "--port", str(port), *extra]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def _healthy(base_url: str) -> bool:
    """Whether GET base_url/api/health answers 200 within 2 s (plain http.client: no proxy settings apply)."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=2)
    try:
        connection.request("GET", parts.path.rstrip("/") + "/api/health")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def wait_ready(base_url: str, server: subprocess.Popen[bytes], timeout_s: float = 180.0) -> None:
    """Poll /api/health every 0.5 s until it answers 200; SystemExit when the server exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if _healthy(base_url):
            return
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"firs serve did not start (exit status {server.poll()})")
        time.sleep(0.5)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL when it has not exited within 15 s."""
    server.terminate()
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(5)


def proc_status_kib(pid: int | str, key: str) -> int:
    """One VmXXX field (VmRSS, VmHWM, ...) of /proc/PID/status, in KiB; 0 when the process is gone.
    `pid` may be "self"."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (from /proc/PID/task/*/children)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                todo.extend(int(child) for child in children.read_text().split())
    return pids


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process and its descendants so far (from /proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def tree_kib(pid: int, key: str) -> int:
    """proc_status_kib summed over the process and its descendants (the server and any workers)."""
    return sum(proc_status_kib(p, key) for p in process_tree(pid))

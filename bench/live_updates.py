"""Live catalogue: add/remove latency, how fast a second `firs serve` follows, and search
latency while `firs add` puts 1000 products in.

On a copy of INDEX_DIR, two `firs serve` replicas run with the admin API on. One product at a
time is added through replica A's admin API (multipart: the CSV row and its picture, so the
image is already local) and removed again; after each change replica B is polled until it
answers accordingly (follow time). `firs add` from the command line is timed too (process
start included). Then `firs add` of --bulk products runs while one client searches replica
A without pause: p50 during the add against p50 idle, in the same run.

    python bench/live_updates.py INDEX_DIR CATALOG.csv QUERIES.tsv --image-root DIR [--singles 20] [--bulk 1000]

CATALOG.csv: rows `id,image,...` whose images lie under --image-root (the dev gallery's).
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from http_latency import post_photo
from serving import free_port, wait_ready

from firs.eval.queries import read_queries

KEY = "bench-admin-key-0123456789"


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request(method, path, body, headers or {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status


def products(port: int) -> int:
    """How many products the server searches now (its engine's, not the store's: the store is
    read live, the engine's graph snapshot follows it)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/api/health")
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return int(answer["products"])


def multipart(row: dict[str, str], picture: bytes) -> tuple[bytes, str]:
    boundary = "firsbench7d1b"
    lines = ["id,image,title,category", f"{row['id']},p.jpg,{row['id']},{row.get('category', '')}"]
    parts = [
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="catalog"; filename="c.csv"\r\n'
            f"Content-Type: text/csv\r\n\r\n"
        ).encode()
        + "\n".join(lines).encode()
        + b"\r\n",
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="p.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + picture
        + b"\r\n",
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def until(condition: Callable[[], bool], limit: float = 30.0) -> float:
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > limit:
            return float("inf")
        time.sleep(0.01)
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def serve(index: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    firs = Path(sys.executable).parent / "firs"
    command = [str(firs), "serve", "--index", str(index), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "FIRS_ADMIN_KEY": KEY}
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", type=Path)
    parser.add_argument("catalog", type=Path)
    parser.add_argument("queries", type=Path)
    parser.add_argument("--image-root", type=Path, required=True)
    parser.add_argument("--singles", type=int, default=20)
    parser.add_argument("--bulk", type=int, default=1000)
    args = parser.parse_args()
    with args.catalog.open() as handle:
        rows = list(csv.DictReader(handle))
    photos = [q.path.read_bytes() for q in read_queries(args.queries)[:400]]
    auth = {"Authorization": f"Bearer {KEY}"}
    with tempfile.TemporaryDirectory(prefix="firs-live-") as tmp:
        work = Path(tmp)
        index = work / "index"
        shutil.copytree(args.index.resolve(), index)
        ports = [free_port(), free_port()]
        servers = [serve(index, port, work / f"serve-{n}.log") for n, port in enumerate(ports)]
        try:
            for port, server in zip(ports, servers, strict=True):
                wait_ready(f"http://127.0.0.1:{port}", server, timeout_s=300)
            a, b = ports
            for photo in photos[:5]:
                post_photo(a, photo, "mode=fine&top_k=10")
            idle = [post_photo(a, photo, "mode=fine&top_k=10")[0] for photo in photos[5:65]]
            print(f"{index}: fine search over HTTP, idle p50 {statistics.median(idle):.1f} ms (60 photos)")

            built = products(b)
            adds, removes, follow_add, follow_remove = [], [], [], []
            for number in range(args.singles):
                row = {**rows[number], "id": f"live-{number}"}
                body, kind = multipart(row, Path(rows[number]["image"]).read_bytes())
                start = time.perf_counter()
                status = request(a, "POST", "/api/products", body, {**auth, "Content-Type": kind})
                adds.append((time.perf_counter() - start) * 1000)
                assert status == 200, status
                follow_add.append(until(lambda: products(b) == built + 1))
                start = time.perf_counter()
                assert request(a, "DELETE", f"/api/products/live-{number}", headers=auth) == 200
                removes.append((time.perf_counter() - start) * 1000)
                follow_remove.append(until(lambda: products(b) == built))
            print(
                f"admin API, one product with its picture: add p50 {statistics.median(adds):.0f} ms "
                f"(p90 {percentile(adds, 0.9):.0f}), remove p50 {statistics.median(removes):.0f} ms "
                f"(p90 {percentile(removes, 0.9):.0f}); {args.singles} each"
            )
            print(
                f"replica B searched the change: after an add p50 {statistics.median(follow_add) * 1000:.0f} ms, "
                f"max {max(follow_add) * 1000:.0f} ms; after a remove p50 "
                f"{statistics.median(follow_remove) * 1000:.0f} ms, max {max(follow_remove) * 1000:.0f} ms"
            )

            firs = str(Path(sys.executable).parent / "firs")
            cli = []
            for number in range(5):
                path = work / f"one-{number}.csv"
                with path.open("w", newline="") as handle:
                    writer = csv.DictWriter(handle, list(rows[0]))
                    writer.writeheader()
                    writer.writerow({**rows[100 + number], "id": f"cli-{number}"})
                root = ["--image-root", str(args.image_root), "--quiet"]
                start = time.perf_counter()
                subprocess.run([firs, "add", str(path), "--index", str(index), *root], check=True, capture_output=True)
                cli.append(time.perf_counter() - start)
                start = time.perf_counter()
                remove = [firs, "remove", f"cli-{number}", "--index", str(index)]
                subprocess.run(remove, check=True, capture_output=True)
                cli.append(time.perf_counter() - start)
            print(
                f"command line (process start included): add of one p50 {statistics.median(cli[::2]):.2f} s, "
                f"remove of one p50 {statistics.median(cli[1::2]):.2f} s"
            )

            bulk = work / "bulk.csv"
            with bulk.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, list(rows[0]))
                writer.writeheader()
                for number in range(args.bulk):
                    writer.writerow({**rows[number % len(rows)], "id": f"bulk-{number}"})
            command = [firs, "add", str(bulk), "--index", str(index), "--image-root", str(args.image_root), "--quiet"]
            start = time.perf_counter()
            adding = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            during = []
            number = 0
            while adding.poll() is None:
                during.append(post_photo(a, photos[65 + number % 300], "mode=fine&top_k=10")[0])
                number += 1
            took = time.perf_counter() - start
            print(adding.stdout.read().decode().strip().splitlines()[-1] if adding.stdout else "")
            seen = until(lambda: products(b) == built + args.bulk)
            during_p50 = statistics.median(during)
            print(
                f"bulk add of {args.bulk}: {took:.0f} s; fine search p50 during it {during_p50:.1f} ms "
                f"({len(during)} searches) = {during_p50 / statistics.median(idle):.2f}x idle; "
                f"replica B had the last product {seen * 1000:.0f} ms after the command ended"
            )
            idle_after = [post_photo(a, photo, "mode=fine&top_k=10")[0] for photo in photos[5:65]]
            after = statistics.median(idle_after)
            print(f"fine search p50 afterwards ({args.bulk} products beside the graph): {after:.1f} ms")
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)


if __name__ == "__main__":
    main()

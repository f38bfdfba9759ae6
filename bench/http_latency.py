"""End-to-end HTTP latency of `firs serve`: start-up (seconds to healthy and to the first answer,
resident memory), p50/p95 and answers/s per mode at 1 and 8 concurrent clients, the cache-hit
latency, and the server's memory at the end. Starts the server itself (a subprocess on a free port).
With --reference, the eager PyTorch forward of issue 14 is timed in this process before the server
starts and after it stops, and each one-client p50 is also given as a multiple of it.
    python bench/http_latency.py --index bench/out/dev-index --queries ../shared/data/viton-dev/queries.tsv
To measure an older version in the same session, run it with PYTHONPATH=<its checkout>/src.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from mode_latency import eager_reference, reference_ms
from serving import free_port, multipart_image, proc_status_kib, start_server, stop_server, wait_ready

from firs.eval.queries import read_queries


def post_photo(port: int, data: bytes, params: str) -> tuple[float, int, dict]:
    body, content_type = multipart_image(data)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    connection.request("POST", f"/api/search?{params}", body, {"Content-Type": content_type})
    response = connection.getresponse()
    answer = json.loads(response.read())
    elapsed = (time.perf_counter() - start) * 1000
    connection.close()
    return elapsed, response.status, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--n", type=int, default=120, help="requests per mode and concurrency")
    parser.add_argument("--workers", type=int, default=None, help="firs serve --workers (default: its own)")
    parser.add_argument("--reference", action="store_true", help="also time the eager reference forward")
    args = parser.parse_args()
    eager = eager_reference() if args.reference else None
    before = reference_ms(eager) if eager else None
    photos = [q.path.read_bytes() for q in read_queries(args.queries)[: 4 * args.n]]
    port = free_port()
    workers = [] if args.workers is None else ["--workers", str(args.workers)]
    started = time.perf_counter()
    server = start_server(args.index, port, args.workers, subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server, timeout_s=120)
        healthy = time.perf_counter() - started
        first = [post_photo(port, photos[-1], f"mode=fine&top_k={k}")[0] for k in (10, 9, 8)]
        answered = healthy + first[0] / 1000
        rss = proc_status_kib(server.pid, "VmRSS") / 1024
        print(f"firs serve {' '.join(workers)}; {args.n} requests per row; photos are distinct (no cache hits)")
        print(f"start-up: healthy after {healthy:.1f} s, first fine answer after {answered:.1f} s; RSS {rss:.0f} MB")
        print(f"first fine requests after start (one photo, not cached): {', '.join(f'{t:.1f}' for t in first)} ms")
        offset = 0
        one_client: dict[str, float] = {}
        for mode in ("simple", "fine"):
            for clients in (1, 8):
                batch = photos[offset : offset + args.n]
                offset = (offset + args.n) % len(photos)
                with ThreadPoolExecutor(clients) as pool:
                    start = time.perf_counter()
                    outcomes = list(pool.map(lambda d, m=mode: post_photo(port, d, f"mode={m}&top_k=10"), batch))
                    wall = time.perf_counter() - start
                times = [t for t, status, _ in outcomes if status == 200]
                busy = sum(status == 503 for _, status, _ in outcomes)
                server_total = np.median([a["timings_ms"]["total"] for _, s, a in outcomes if s == 200])
                p50, p95 = np.median(times), np.percentile(times, 95)
                print(
                    f"{mode:6s} clients {clients}: p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  (server total p50"
                    f" {server_total:.1f} ms)  {len(times) / wall:5.1f} answers/s  503s {busy}"
                )
                if clients == 1:
                    one_client[mode] = float(p50)
        data = photos[0]
        post_photo(port, data, "mode=fine&top_k=10")
        hits = [post_photo(port, data, "mode=fine&top_k=10") for _ in range(50)]
        assert all(answer["cached"] for _, _, answer in hits)
        hit_times = [t for t, _, _ in hits]
        print(f"cache hit (fine): p50 {np.median(hit_times):.1f} ms  p95 {np.percentile(hit_times, 95):.1f} ms")
        resident, peak = (proc_status_kib(server.pid, key) / 1024 for key in ("VmRSS", "VmHWM"))
        print(f"server memory at the end: resident {resident:.0f} MB, peak {peak:.0f} MB")
    finally:
        stop_server(server)
    if eager and before:
        after = reference_ms(eager)
        reference = (before + after) / 2
        ratios = ", ".join(f"{mode} {ms / reference:.2f}x" for mode, ms in one_client.items())
        print(f"reference (eager batch-1 forward): {before:.1f} ms before, {after:.1f} ms after; one client: {ratios}")


if __name__ == "__main__":
    main()

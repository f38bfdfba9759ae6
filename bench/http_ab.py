"""Two versions of `firs serve` side by side: one client, requests alternating between them photo by
photo, so that both see the same machine (on a shared host the same code reads 20-30 % apart from one
run to the next, which hides a 1 ms change in runs taken one after the other).

    python bench/http_ab.py --index INDEX --queries QUERIES.tsv --base-src OLD_CHECKOUT/src [--n 150]

Both servers run on this interpreter; the base version's package comes first on its PYTHONPATH. Prints,
per mode, each version's client p50, the server's own total and each stage (the answers' timings), and
the ratio this version / base. Which server is asked first alternates from photo to photo. Then, with
--rounds R, each version in turn serves 8 concurrent clients, R rounds each, alternating: answers/s and
the server's CPU time per answer (core-ms, from /proc), which moves less with the host's noise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from http_latency import post_photo
from serving import free_port, start_server, stop_server, tree_cpu_seconds, wait_ready

from firs.eval.queries import read_queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--base-src", type=Path, required=True, help="the base version's src/ folder")
    parser.add_argument("--n", type=int, default=150, help="photos per mode")
    parser.add_argument("--modes", nargs="+", default=["simple", "fine"])
    parser.add_argument("--rounds", type=int, default=0, help="8-client rounds per version and mode")
    args = parser.parse_args()
    # 10 warm-up photos, n for one client, then n fresh ones per 8-client round (every answer a new one)
    photos = [q.path.read_bytes() for q in read_queries(args.queries)[: (args.rounds + 1) * args.n + 10]]
    ports = {"base": free_port(), "this": free_port()}
    base_path = os.pathsep.join(filter(None, [str(args.base_src.resolve()), os.environ.get("PYTHONPATH")]))
    environments = {"base": {**os.environ, "PYTHONPATH": base_path}, "this": None}
    servers = {}
    try:
        for name, port in ports.items():
            servers[name] = start_server(args.index, port, None, subprocess.DEVNULL, environments[name])
            wait_ready(f"http://127.0.0.1:{port}", servers[name], timeout_s=120)
        for mode in args.modes:
            for data in photos[:10]:  # warm-up, both servers
                for port in ports.values():
                    post_photo(port, data, f"mode={mode}&top_k=10")
            client: dict[str, list[float]] = {name: [] for name in ports}
            stages: dict[str, dict[str, list[float]]] = {name: {} for name in ports}
            for number, data in enumerate(photos[10 : 10 + args.n]):
                order = list(ports) if number % 2 == 0 else list(ports)[::-1]
                for name in order:
                    elapsed, status, answer = post_photo(ports[name], data, f"mode={mode}&top_k=10")
                    if status != 200:
                        raise SystemExit(f"{name} answered {status}: {answer}")
                    client[name].append(elapsed)
                    for stage, ms in answer["timings_ms"].items():
                        stages[name].setdefault(stage, []).append(ms)
            print(f"{mode}, one client, {len(client['this'])} photos, p50 ms: base / this (ratio)")
            rows = [("client", client["base"], client["this"])]
            rows += [
                (f"server {stage}", stages["base"][stage], stages["this"].get(stage, [0.0])) for stage in stages["base"]
            ]
            for label, base, this in rows:
                b, t = float(np.median(base)), float(np.median(this))
                print(f"  {label:18s} {b:7.2f} / {t:7.2f}  ({t / b if b else float('nan'):.3f})")
            if args.rounds:
                loaded = {name: [] for name in ports}
                for round_ in range(args.rounds):
                    fresh = photos[10 + (round_ + 1) * args.n : 10 + (round_ + 2) * args.n]
                    for name in ports:
                        loaded[name].append(_load(ports[name], servers[name].pid, fresh, mode))
                print(f"{mode}, 8 clients, {args.rounds} rounds each, alternating: answers/s, core-ms per answer")
                for name, results in loaded.items():
                    print(f"  {name}: " + "  ".join(f"{rate:5.1f}/s {cpu:5.1f} core-ms" for rate, cpu in results))
    finally:
        for server in servers.values():
            stop_server(server)


def _load(port: int, pid: int, photos: list[bytes], mode: str) -> tuple[float, float]:
    """Answers/s and server core-ms per answer with 8 clients over the photos."""
    cpu, start = tree_cpu_seconds(pid), time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda data: post_photo(port, data, f"mode={mode}&top_k=10"), photos))
    wall, used = time.perf_counter() - start, tree_cpu_seconds(pid) - cpu
    answered = sum(status == 200 for _, status, _ in outcomes)
    return answered / wall, used * 1000 / max(answered, 1)


if __name__ == "__main__":
    main()

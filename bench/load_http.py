"""Load run of `firs serve` with locust used as a library: 16 users for at most 60 s mix photo searches
(simple, fine and tag; every upload's bytes differ, so answers come from the engine, not the cache),
text searches, product pages, thumbnails and more-like-this. Reports requests and failures per endpoint,
answers per second, p50/p95 latency per mode (answered requests only), the count of 5xx other than 503
(must be 0), the 503 count and whether each carried Retry-After, and the server's RSS before the load,
at its peak (sampled every 0.5 s) and 5 s after it. Starts the server itself: a subprocess on a free
loopback port.
    python bench/load_http.py [--index demo/index] [--seconds 60] [--json]
Exits 1 when any answer was a 5xx other than 503, a 503 came without Retry-After, or the server died.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import locust
import numpy as np
import requests
from locust import FastHttpUser, between, task
from locust.env import Environment
from PIL import Image
from serving import free_port, multipart_image, start_server, stop_server, tree_kib, wait_ready

DEFAULT_INDEX = Path("demo/index")
MAX_SECONDS = 60
SAMPLE_S = 0.5  # RSS sampling period during the load
SETTLE_S = 5.0  # wait after the load before the last RSS reading
RETRY_AFTER_CAP_S = 5.0  # a user honours Retry-After, up to this
PHOTO_MODES = ("simple", "fine", "tag")
ENDPOINTS = (
    "search simple",
    "search fine",
    "search tag",
    "search text",
    "product",
    "thumbnail",
    "similar",
)


@dataclass
class Material:
    """What the users ask for: product ids, title words, and query photos to vary."""

    ids: list[str]
    words: list[str]
    photos: list[Image.Image]


def prepare(base_url: str, index: Path, rng: random.Random, n_bases: int = 6) -> Material:
    """Product ids and title words from a broad search; query photos from catalogue pictures (as they
    are, and pasted onto a noisy street-like background), plus the demo's query photo when present."""
    session = requests.Session()
    indexed = session.get(f"{base_url}/api/stats", timeout=30).json()["catalogue"]["indexed"]
    gray = io.BytesIO()
    Image.new("RGB", (256, 256), (128, 128, 128)).save(gray, "PNG")
    answer = session.post(
        f"{base_url}/api/search",
        params={"mode": "simple", "top_k": max(1, min(indexed, 500))},
        files={"image": ("gray.png", gray.getvalue(), "image/png")},
        timeout=60,
    )
    answer.raise_for_status()
    results = answer.json()["results"]
    ids = [r["id"] for r in results]
    if not ids:
        raise SystemExit("the index answered no products: nothing to load it with")
    words = sorted({w for r in results for w in re.findall(r"[a-z]{3,}", str(r.get("title", "")).lower())})
    photos: list[Image.Image] = []
    for product_id in rng.sample(ids, min(n_bases, len(ids))):
        picture = session.get(f"{base_url}/api/products/{product_id}/image", timeout=30)
        if picture.status_code != 200:
            continue
        image = Image.open(io.BytesIO(picture.content)).convert("RGB")
        photos.append(image)
        noise = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        street = Image.fromarray(noise).resize((960, 720), Image.BILINEAR)
        small = image.copy()
        small.thumbnail((rng.randint(300, 560), rng.randint(300, 560)))
        street.paste(small, (rng.randint(0, 960 - small.width), rng.randint(0, 720 - small.height)))
        photos.append(street)
    demo_query = index.parent / "query.jpg"
    if demo_query.is_file():
        photos.append(Image.open(demo_query).convert("RGB"))
    if not photos:
        raise SystemExit("no product picture could be fetched to make query photos from")
    return Material(ids, words or ["dress"], photos)


def photo_bytes(rng: random.Random, photo: Image.Image) -> bytes:
    """A query photo's JPEG with one random pixel and a random quality: new bytes every time."""
    image = photo.copy()
    image.putpixel((rng.randrange(image.width), rng.randrange(image.height)), tuple(rng.randrange(256) for _ in "rgb"))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=rng.randint(70, 95))
    return buffer.getvalue()


@dataclass
class Recorder:
    """Every answer's status and latency by endpoint; the server's own search time by mode."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    server_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    busy_without_retry_after: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def on_request(self, name: str, response_time: float, response: Any = None, **_kwargs: Any) -> None:
        status = int(getattr(response, "status_code", 0) or 0)
        self.statuses[name][status] += 1
        if status == 200:
            self.latencies[name].append(response_time)
        elif status == 503 and not (response.headers or {}).get("Retry-After"):
            self.busy_without_retry_after += 1
        if status not in (200, 503):
            text = (getattr(response, "text", None) or "")[:160]
            self.errors[f"{name}: {status} {text}"] += 1


class FirsUser(FastHttpUser):
    """One client of the FIRS API: photos, words, product pages, thumbnails, more like this."""

    wait_time = between(0.1, 0.5)
    material: Material
    recorder: Recorder
    network_timeout = 120.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.rng = random.Random()

    def _call(self, method: str, path: str, name: str, **kwargs: Any) -> Any:
        """A request; anything but 200 is a failure in locust's tally, and a 503's Retry-After is honoured."""
        pause = 0.0
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as response:
            answer = None
            if response.status_code == 200:
                response.success()
                if name.startswith("search"):
                    answer = response.json()
            elif response.status_code == 503:
                retry = (response.headers or {}).get("Retry-After")
                response.failure(f"503 busy (Retry-After {retry})")
                pause = min(float(retry), RETRY_AFTER_CAP_S) if retry and retry.isdigit() else 1.0
            else:
                response.failure(f"{response.status_code}: {(response.text or '')[:160]}")
        if answer is not None and "timings_ms" in answer:
            self.recorder.server_ms[name].append(float(answer["timings_ms"].get("total", 0.0)))
        if pause:
            gevent.sleep(pause)
        return answer

    def _photo_search(self, mode: str) -> None:
        body, content_type = multipart_image(photo_bytes(self.rng, self.rng.choice(self.material.photos)))
        params = f"mode={mode}&top_k={self.rng.choice((10, 20, 30))}"
        if mode != "simple" and self.rng.random() < 0.3:
            params += "&all_items=true"
        if self.rng.random() < 0.2:
            params += f"&where=price%3C%3D{self.rng.choice((40, 60, 100))}"
        self._call("POST", f"/api/search?{params}", f"search {mode}", data=body, headers={"Content-Type": content_type})

    @task(4)
    def search_simple(self) -> None:
        self._photo_search("simple")

    @task(2)
    def search_fine(self) -> None:
        self._photo_search("fine")

    @task(2)
    def search_tag(self) -> None:
        self._photo_search("tag")

    @task(3)
    def search_text(self) -> None:
        words = " ".join(self.rng.sample(self.material.words, min(len(self.material.words), self.rng.randint(1, 2))))
        body: dict[str, Any] = {"text": words, "top_k": 10}
        if self.rng.random() < 0.3:
            body["where"] = [f"price<={self.rng.choice((40, 60, 100))}"]
        self._call("POST", "/api/search/text", "search text", json=body)

    @task(3)
    def product(self) -> None:
        self._call("GET", f"/api/products/{self.rng.choice(self.material.ids)}", "product")

    @task(4)
    def thumbnail(self) -> None:
        size = self.rng.choice((128, 256))
        self._call("GET", f"/api/products/{self.rng.choice(self.material.ids)}/image?size={size}", "thumbnail")

    @task(1)
    def similar(self) -> None:
        self._call("GET", f"/api/products/{self.rng.choice(self.material.ids)}/similar?top_k=10", "similar")


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def summarise(recorder: Recorder, env: Environment, seconds: float) -> dict[str, Any]:
    endpoints: dict[str, Any] = {}
    for name in ENDPOINTS:
        entry = env.stats.entries.get((name, "POST" if name.startswith("search") else "GET"))
        statuses = recorder.statuses.get(name, Counter())
        times = recorder.latencies.get(name, [])
        endpoints[name] = {
            "requests": entry.num_requests if entry else 0,
            "failures": entry.num_failures if entry else 0,
            "answered": statuses[200],
            "busy_503": statuses[503],
            "answers_per_s": round(statuses[200] / seconds, 2),
            "p50_ms": percentile(times, 50),
            "p95_ms": percentile(times, 95),
            "server_p50_ms": percentile(recorder.server_ms.get(name, []), 50),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
        }
    statuses = Counter[int]()
    for counts in recorder.statuses.values():
        statuses.update(counts)
    return {
        "endpoints": endpoints,
        "requests": env.stats.total.num_requests,
        "failures": env.stats.total.num_failures,
        "answered": statuses[200],
        "answers_per_s": round(statuses[200] / seconds, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "5xx": sum(v for k, v in statuses.items() if k >= 500 and k != 503),  # 503 busy: judged apart
        "503": statuses[503],
        "503_without_retry_after": recorder.busy_without_retry_after,
        "connection_errors": statuses[0],
        "other_errors": dict(recorder.errors.most_common(10)),
    }


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def print_report(report: dict[str, Any]) -> None:
    cfg, rss = report["config"], report["server_rss_kib"]
    print(
        f"firs serve over {cfg['index']} ({cfg['products']} products, {cfg['server_workers']} search workers); "
        f"{cfg['users']} users for {cfg['seconds']:.1f} s; locust {cfg['locust']}; "
        f"{cfg['query_photos']} query photos, every upload's bytes distinct"
    )
    header = f"{'endpoint':14s} {'requests':>8s} {'fail':>6s} {'503':>5s} {'answers/s':>9s} {'p50 ms':>8s}"
    print(header + f" {'p95 ms':>8s} {'server p50':>10s}")

    def cell(value: float | None, width: int) -> str:
        return f"{value:{width}.1f}" if value is not None else f"{'-':>{width}s}"

    for name, row in report["endpoints"].items():
        print(
            f"{name:14s} {row['requests']:8d} {row['failures']:6d} {row['busy_503']:5d} {row['answers_per_s']:9.2f} "
            f"{cell(row['p50_ms'], 8)} {cell(row['p95_ms'], 8)} {cell(row['server_p50_ms'], 10)}"
        )
    print(
        f"{'total':14s} {report['requests']:8d} {report['failures']:6d} {report['503']:5d} "
        f"{report['answers_per_s']:9.2f}"
    )
    print("(latency: answered (200) requests only, client side; server p50: the answer's own timings_ms.total)")
    print(f"statuses: {report['statuses']}")
    print(f"5xx other than 503: {report['5xx']}")
    every = "yes" if report["503_without_retry_after"] == 0 else f"no ({report['503_without_retry_after']} without)"
    print(f"503: {report['503']}; every 503 carried Retry-After: {every}")
    if report["connection_errors"]:
        print(f"connection errors: {report['connection_errors']}")
    for text, count in report["other_errors"].items():
        print(f"unexpected answer x{count}: {text}")
    print(
        f"server RSS: before {mib(rss['before'])}, peak during {mib(rss['peak'])} ({rss['samples']} samples, "
        f"every {SAMPLE_S} s), after {mib(rss['after'])} ({SETTLE_S:.0f} s after the load); "
        f"kernel high-water mark (VmHWM) {mib(rss['hwm'])}"
    )
    stats = report.get("server_stats") or {}
    if stats:
        print(f"server /api/stats after: cache {stats.get('cache')}, refused busy {stats.get('refused_busy')}")
    print(f"server log: {report['server_log']['tracebacks']} tracebacks, {report['server_log']['lines']} lines")
    print("verdict: " + ("ok" if report["ok"] else "FAILED (" + "; ".join(report["problems"]) + ")"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX, help="index to serve (default demo/index)")
    parser.add_argument("--seconds", type=float, default=60.0, help=f"length of the load (at most {MAX_SECONDS})")
    parser.add_argument("--users", type=int, default=16, help="concurrent users (default 16)")
    parser.add_argument("--workers", type=int, default=None, help="firs serve --workers (default: its own)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the choice of query photos")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {MAX_SECONDS}]")
    if not 1 <= args.users <= 64:
        parser.error("--users must be between 1 and 64")
    if not (args.index / "manifest.json").is_file():
        if args.index != DEFAULT_INDEX:
            parser.error(f"{args.index} is not a FIRS index (no manifest.json)")
        print("demo/index is missing: building it with `firs demo`", file=sys.stderr)
        firs = Path(sys.executable).parent / "firs"
        subprocess.run([str(firs), "demo"], check=True, stdout=subprocess.DEVNULL)

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="firs-load-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            server = start_server(args.index, port, args.workers, log)
        try:
            wait_ready(base_url, server)
            material = prepare(base_url, args.index, rng)
            before_stats = requests.get(f"{base_url}/api/stats", timeout=30).json()
            FirsUser.material, FirsUser.recorder = material, Recorder()
            env = Environment(user_classes=[FirsUser], host=base_url)
            env.events.request.add_listener(FirsUser.recorder.on_request)

            rss = {"before": tree_kib(server.pid, "VmRSS"), "peak": 0, "samples": 0}
            running = True

            def sample() -> None:
                while running:
                    rss["peak"] = max(rss["peak"], tree_kib(server.pid, "VmRSS"))
                    rss["samples"] += 1
                    gevent.sleep(SAMPLE_S)

            sampler = gevent.spawn(sample)
            runner = env.create_local_runner()
            start = time.perf_counter()
            runner.start(args.users, spawn_rate=args.users)
            gevent.spawn_later(args.seconds, runner.quit)
            runner.greenlet.join()
            seconds = time.perf_counter() - start
            gevent.sleep(SETTLE_S)
            running = False
            sampler.join()
            rss["after"] = tree_kib(server.pid, "VmRSS")
            rss["hwm"] = tree_kib(server.pid, "VmHWM")
            alive = server.poll() is None
            after_stats = requests.get(f"{base_url}/api/stats", timeout=30).json() if alive else {}
        finally:
            stop_server(server)
        server_log = log_path.read_text(errors="replace")

    report = summarise(FirsUser.recorder, env, seconds)
    report["config"] = {
        "index": str(args.index),
        "products": before_stats["catalogue"]["indexed"],
        "server_workers": before_stats["pool"]["workers"],
        "users": args.users,
        "seconds": round(seconds, 1),
        "locust": locust.__version__,
        "query_photos": len(material.photos),
    }
    report["server_rss_kib"] = rss
    report["server_stats"] = {key: after_stats.get(key) for key in ("cache", "pool", "refused_busy")}
    report["server_log"] = {"tracebacks": server_log.count("Traceback"), "lines": server_log.count("\n")}
    problems = []
    if report["5xx"]:
        problems.append(f"{report['5xx']} answers were 5xx (not 503)")
    if report["503_without_retry_after"]:
        problems.append(f"{report['503_without_retry_after']} 503s came without Retry-After")
    if not alive:
        problems.append("the server died during the load")
    report["problems"], report["ok"] = problems, not problems
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    if report["server_log"]["tracebacks"] and not args.json:
        print("server log tracebacks (first 40 lines of the log that mention one):", file=sys.stderr)
        lines = server_log.splitlines()
        first = next(i for i, line in enumerate(lines) if "Traceback" in line)
        print("\n".join(lines[max(0, first - 2) : first + 38]), file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

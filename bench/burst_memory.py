"""Memory of heavy uploads: what one decode costs, and whether `firs serve` gives memory back after a burst.

1. Decode cost per image. Heavy but plausible inputs are generated in memory (PNGs written by hand with
   zlib/struct, so 16-bit RGB and a 1-bit bomb can be made without holding their raster; JPEGs with PIL):
   a 7000x7000 16-bit grey PNG, 7000x7000 8-bit RGB PNG, 5000x5000 RGBA PNG, 7000x7000 16-bit RGB PNG,
   8000x6000 and 12000x4000 JPEGs, a 20000x20000 1-bit PNG bomb and a 4032x3024 phone JPEG. Each is
   decoded with firs.vision.decode.decode_photo in a fresh subprocess (this script with --decode-child),
   after the imports, the server's allocator tuning and a small warm-up decode; the kernel's high-water
   mark is reset (/proc/self/clear_refs) just before the decode. Reported: compressed size, outcome
   (accepted WxH -> picture size, or the refusal), decode time, peak RSS growth (VmHWM after minus VmRSS
   before) and the decoder's own header estimate; the largest accepted peak is set beside MAX_DECODE_BYTES.
2. Bursts against the server. `firs serve --index demo/index --workers 2` (demo/index built with `firs demo`
   when missing) on a free loopback port, a fresh server per burst; 8 client threads post one image in
   fine mode to /api/search for --seconds, every request with a (pixel variant, top_k) pair not used before
   in the burst, so the answer cache cannot hit. Server RSS is sampled every 0.25 s; 5 s after the burst it
   is read again. Reported: requests, statuses, p50/p95 latency of the 200s, server RSS before / peak /
   after, VmHWM, after minus before. One burst posts the heaviest accepted image of step 1 that fits the
   10 MB upload cap, one the phone JPEG, for comparison.

    .venv/bin/python bench/burst_memory.py [--seconds 20] [--json]

Exits 1 when an answer was a 5xx other than a 503 with Retry-After, a request got no answer (connection
error), or a server died. The server and /proc helpers come from bench/serving.py (not bench/load_http.py:
that module imports locust, which monkey-patches the standard library with gevent on import).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image
from serving import free_port, proc_status_kib, start_server, stop_server, tree_kib, wait_ready

DEFAULT_INDEX = Path("demo/index")
SERVER_WORKERS = 2
CLIENTS = 8
MAX_SECONDS = 30.0
SAMPLE_S = 0.25  # server RSS sampling period during a burst
SETTLE_S = 5.0  # wait after a burst before the last RSS reading
VARIANTS = 8  # pixel variants of each burst image; with TOP_KS, VARIANTS * 50 distinct cache keys
TOP_KS = range(1, 51)
UPLOAD_CAP = 10 * 1024 * 1024  # the server's max_upload_bytes (ServiceOptions)
REQUEST_TIMEOUT = (5.0, 180.0)
MIB = 1 << 20


# ----------------------------------------------------------------------------- inputs


def _scene(y0: int, y1: int, width: int, height: int) -> np.ndarray:
    """Rows y0..y1 of a synthetic product shot, floats in [0, 1], shape (rows, width, 4): a soft
    backdrop gradient, a striped garment (ellipse) and a dark bag; channel 3 is 1 on the garment and bag,
    0 elsewhere (the alpha of a cut-out)."""
    v = (np.arange(y0, y1, dtype=np.float32) / height)[:, None]
    u = (np.arange(width, dtype=np.float32) / width)[None, :]
    out = np.empty((y1 - y0, width, 4), np.float32)
    out[..., 0] = 0.86 - 0.22 * v + 0.0 * u
    out[..., 1] = 0.83 - 0.18 * v + 0.04 * u
    out[..., 2] = 0.80 - 0.10 * u + 0.02 * v
    out[..., 3] = 0.0
    garment = ((u - 0.5) / 0.28) ** 2 + ((v - 0.55) / 0.36) ** 2 <= 1.0
    stripes = 0.08 * np.sin(2 * np.pi * 36 * v) * np.ones_like(u)
    for channel, base in enumerate((0.62, 0.16, 0.22)):
        out[..., channel] = np.where(garment, base + stripes, out[..., channel])
    bag = (u > 0.08) & (u < 0.22) & (v > 0.62) & (v < 0.84)
    for channel, base in enumerate((0.18, 0.14, 0.12)):
        out[..., channel] = np.where(bag, base + 0.05 * u, out[..., channel])
    out[..., 3] = (garment | bag).astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bytes(
    width: int, height: int, color_type: int, bit_depth: int, rows: Callable[[int, int], np.ndarray], band: int = 128
) -> bytes:
    """A PNG written by hand, band by band (the raster is never held whole): `rows(y0, y1)` gives the
    raw scanlines as uint8 (rows, bytes per row); every row uses the Sub filter."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    step = max(1, channels * bit_depth // 8)  # the filter's bytes per pixel
    compressor = zlib.compressobj(6)
    parts = []
    for y0 in range(0, height, band):
        raw = rows(y0, min(height, y0 + band))
        lines = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
        lines[:, 0] = 1  # Sub
        lines[:, 1 : 1 + step] = raw[:, :step]
        lines[:, 1 + step :] = raw[:, step:] - raw[:, :-step]  # uint8 wraps, as the filter wants
        parts.append(compressor.compress(lines.tobytes()))
    parts.append(compressor.flush())
    stream = b"".join(parts)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = b"".join(_chunk(b"IDAT", stream[i : i + MIB]) for i in range(0, len(stream), MIB))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + idat + _chunk(b"IEND", b"")


def _mark(rows: np.ndarray, y0: int, variant: int) -> np.ndarray:
    """Variant n: the first pixel's bytes set to n (the cache sees other bytes, the picture is the same)."""
    if y0 == 0 and variant:
        rows[0, :4] = variant
    return rows


def png_8bit(width: int, height: int, alpha: bool, variant: int = 0) -> bytes:
    def rows(y0: int, y1: int) -> np.ndarray:
        scene = _scene(y0, y1, width, height)
        pixels = (scene * 255 + 0.5).astype(np.uint8)
        # Fabric grain on the garment's green channel (seeded by row: the same in every variant), so the
        # file is a few MB rather than the few hundred KB of a flat graphic.
        grain = np.random.default_rng(y0).integers(0, 3, pixels.shape[:2], dtype=np.uint8)
        pixels[..., 1] += grain * (scene[..., 3] > 0)
        if not alpha:
            pixels = pixels[..., :3]
        return _mark(np.ascontiguousarray(pixels).reshape(y1 - y0, -1), y0, variant)

    return png_bytes(width, height, 6 if alpha else 2, 8, rows)


def png_16bit(width: int, height: int, grey: bool, variant: int = 0) -> bytes:
    def rows(y0: int, y1: int) -> np.ndarray:
        scene = _scene(y0, y1, width, height)[..., :3]
        if grey:
            scene = scene @ np.array([0.299, 0.587, 0.114], np.float32)
        return _mark((scene * 65535 + 0.5).astype(">u2").view(np.uint8).reshape(y1 - y0, -1), y0, variant)

    return png_bytes(width, height, 0 if grey else 2, 16, rows)


def png_bomb(side: int, variant: int = 0) -> bytes:
    """A 1-bit greyscale PNG of side x side, all black: a few dozen KB that would be side**2 pixels."""
    row = np.zeros((1, (side + 7) // 8), np.uint8)
    return png_bytes(side, side, 0, 1, lambda y0, y1: _mark(np.repeat(row, y1 - y0, axis=0), y0, variant), band=1024)


def jpeg_photo(width: int, height: int, quality: int, seed: int, orientation: int = 0, variant: int = 0) -> bytes:
    """A photo-like JPEG: the scene with sensor-like noise; EXIF orientation when given."""
    rng = np.random.default_rng(seed)
    pixels = np.empty((height, width, 3), np.uint8)
    for y0 in range(0, height, 256):
        y1 = min(height, y0 + 256)
        noisy = _scene(y0, y1, width, height)[..., :3] * 255 + rng.normal(0.0, 3.0, (y1 - y0, width, 3))
        pixels[y0:y1] = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    if variant:
        pixels[:8, :8] = variant * 29 % 256  # one 8x8 block: JPEG would smooth away a lone pixel
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, exif=exif.tobytes())
    return buffer.getvalue()


@dataclass
class Input:
    key: str
    label: str
    make: Callable[[int], bytes]  # variant -> bytes; variant 0 is the one decoded in step 1
    media: str


INPUTS = (
    Input("grey16_png", "16-bit grey PNG 7000x7000", lambda v: png_16bit(7000, 7000, True, v), "image/png"),
    Input("rgb_png", "8-bit RGB PNG 7000x7000", lambda v: png_8bit(7000, 7000, False, v), "image/png"),
    Input("rgba_png", "RGBA PNG 5000x5000", lambda v: png_8bit(5000, 5000, True, v), "image/png"),
    Input("rgb16_png", "16-bit RGB PNG 7000x7000", lambda v: png_16bit(7000, 7000, False, v), "image/png"),
    Input("jpeg_8000", "JPEG 8000x6000", lambda v: jpeg_photo(8000, 6000, 90, 1, variant=v), "image/jpeg"),
    Input("jpeg_12000", "JPEG 12000x4000", lambda v: jpeg_photo(12000, 4000, 90, 2, variant=v), "image/jpeg"),
    Input("bomb_png", "1-bit PNG bomb 20000x20000", lambda v: png_bomb(20000, v), "image/png"),
    Input("phone_jpeg", "phone JPEG 4032x3024 (EXIF 6)", lambda v: jpeg_photo(4032, 3024, 92, 3, 6, v), "image/jpeg"),
)
PHONE = "phone_jpeg"
PREFERRED = "rgb_png"  # the heavy burst's image when its peak ties with the largest (within TIE_MIB)
TIE_MIB = 5.0


# ----------------------------------------------------------------------------- step 1: decode cost


def decode_child(path: Path, name: str) -> int:
    """Inside the fresh subprocess: decode one file and print one JSON line of what it cost."""
    from firs.errors import ImageError
    from firs.runtime import tune_allocator
    from firs.vision import decode

    tune_allocator()  # as `firs serve` does (cli.main): freed memory stays in the heap
    for fmt in ("PNG", "JPEG"):  # first-call costs (plugins, codec set-up) are no part of a decode
        warm = io.BytesIO()
        Image.new("RGB", (64, 64), (90, 60, 30)).save(warm, fmt)
        decode.decode_photo(warm.getvalue())
    data = path.read_bytes()
    estimate = None
    with contextlib.suppress(Exception), Image.open(io.BytesIO(data)) as probe:
        if probe.format in ("JPEG", "MPO"):
            probe.draft("RGB", (decode.WORK_SIDE, decode.WORK_SIDE))
        estimate = probe.size[0] * probe.size[1] * decode._peak_bytes_per_pixel(probe.mode, probe.format)
    reset = True
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    except OSError:
        reset = False
    before = proc_status_kib("self", "VmRSS")
    start = time.perf_counter()
    try:
        photo = decode.decode_photo(data, name)
        outcome: dict[str, Any] = {
            "accepted": True,
            "original": list(photo.size),
            "picture": [photo.image.width, photo.image.height],
        }
    except ImageError as exc:
        outcome = {"accepted": False, "refusal": str(exc)}
    seconds = time.perf_counter() - start
    hwm, after = proc_status_kib("self", "VmHWM"), proc_status_kib("self", "VmRSS")
    print(
        json.dumps(
            {
                **outcome,
                "decode_ms": round(seconds * 1000, 1),
                "rss_before_kib": before,
                "hwm_kib": hwm,
                "rss_after_kib": after,
                "peak_growth_mib": round((hwm - before) / 1024, 1),
                "estimate_mib": None if estimate is None else round(estimate / MIB, 1),
                "hwm_reset": reset,
            }
        )
    )
    return 0


def measure_decode(item: Input, data: bytes, tmp: Path) -> dict[str, Any]:
    path = tmp / f"{item.key}.bin"
    path.write_bytes(data)
    command = [sys.executable, str(Path(__file__).resolve()), "--decode-child", str(path), "--name", item.key]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "decode child timed out (180 s)"}
    finally:
        path.unlink(missing_ok=True)
    if done.returncode != 0 or not done.stdout.strip():
        return {"error": f"decode child exit status {done.returncode}: {done.stderr.strip()[-300:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- step 2: bursts


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def burst(index: Path, item: Input, variants: list[bytes], seconds: float) -> dict[str, Any]:
    """One fresh server, CLIENTS threads posting `variants` for `seconds`; what it answered and its RSS."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    lock = threading.Lock()
    counter = itertools.count()
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    server_decode_ms: list[float] = []
    errors: Counter[str] = Counter()
    cached = 0
    busy_without_retry_after = 0
    filename = "upload.png" if item.media == "image/png" else "upload.jpg"

    def client(deadline: float) -> None:
        nonlocal cached, busy_without_retry_after
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                n = next(counter)
            variant, top_k = n % len(variants), TOP_KS[(n // len(variants)) % len(TOP_KS)]
            start = time.perf_counter()
            try:
                answer = session.post(
                    f"{base_url}/api/search",
                    params={"mode": "fine", "top_k": top_k},
                    files={"image": (filename, variants[variant], item.media)},
                    timeout=REQUEST_TIMEOUT,
                )
            except requests.RequestException as exc:
                with lock:
                    statuses[0] += 1
                    errors[f"no answer: {exc.__class__.__name__}"] += 1
                time.sleep(0.5)
                continue
            elapsed_ms = (time.perf_counter() - start) * 1000
            with lock:
                statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    latencies.append(elapsed_ms)
                    try:
                        body = answer.json()
                    except ValueError:
                        body = {}
                        errors["200 without a JSON body"] += 1
                    cached += bool(body.get("cached"))
                    if "decode" in body.get("timings_ms", {}):
                        server_decode_ms.append(float(body["timings_ms"]["decode"]))
                elif answer.status_code == 503 and not answer.headers.get("Retry-After"):
                    busy_without_retry_after += 1
                if answer.status_code not in (200, 503):
                    errors[f"{answer.status_code}: {answer.text[:160]}"] += 1
            if answer.status_code == 503:  # honour Retry-After, up to 5 s
                retry = answer.headers.get("Retry-After", "")
                time.sleep(min(5.0, float(retry)) if retry.isdigit() else 1.0)

    with tempfile.TemporaryDirectory(prefix="firs-burst-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            server = start_server(index, port, SERVER_WORKERS, log)
        try:
            wait_ready(base_url, server)
            time.sleep(1.0)  # let start-up settle before the first reading
            rss = {"before": tree_kib(server.pid, "VmRSS"), "peak": 0, "samples": 0}
            series: list[tuple[float, float]] = []
            stop = threading.Event()
            origin = time.monotonic()

            def sample() -> None:
                while not stop.is_set():
                    now = tree_kib(server.pid, "VmRSS")
                    rss["peak"] = max(rss["peak"], now)
                    rss["samples"] += 1
                    series.append((round(time.monotonic() - origin, 2), round(now / 1024, 1)))
                    stop.wait(SAMPLE_S)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            deadline = time.monotonic() + seconds
            threads = [threading.Thread(target=client, args=(deadline,), daemon=True) for _ in range(CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(REQUEST_TIMEOUT[1] + 30)
            burst_s = time.monotonic() - origin
            time.sleep(SETTLE_S)
            stop.set()
            sampler.join(5)
            rss["after"] = tree_kib(server.pid, "VmRSS")
            rss["hwm"] = tree_kib(server.pid, "VmHWM")
            alive = server.poll() is None
            stats = {}
            if alive:
                with contextlib.suppress(requests.RequestException, ValueError):
                    stats = requests.get(f"{base_url}/api/stats", timeout=30).json()
        finally:
            stop_server(server)
        server_log = log_path.read_text(errors="replace")

    return {
        "image": item.key,
        "label": item.label,
        "upload_bytes": len(variants[0]),
        "variants": len(variants),
        "seconds": round(burst_s, 1),
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "answers_per_s": round(statuses[200] / burst_s, 2),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "server_decode_p50_ms": percentile(server_decode_ms, 50),
        "cache_hits": cached,
        "5xx": sum(v for k, v in statuses.items() if k >= 500 and k != 503),
        "503": statuses[503],
        "503_without_retry_after": busy_without_retry_after,
        "no_answer": statuses[0],
        "errors": dict(errors.most_common(5)),
        "server_rss_kib": {**rss, "after_minus_before": rss["after"] - rss["before"]},
        "rss_series_mib": series,
        "server_alive": alive,
        "refused_busy": stats.get("refused_busy"),
        "server_log_tracebacks": server_log.count("Traceback"),
    }


# ----------------------------------------------------------------------------- report


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def size_text(n: int) -> str:
    return f"{n / MIB:.2f} MiB" if n >= 100 * 1024 else f"{n / 1024:.1f} KiB"


def outcome_text(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"ERROR {row['error']}"
    if row["accepted"]:
        (w, h), (pw, ph) = row["original"], row["picture"]
        return f"accepted {w}x{h} -> {pw}x{ph}"
    return f"refused: {row['refusal']}"


def print_report(report: dict[str, Any]) -> None:
    from firs.vision.decode import MAX_DECODE_BYTES, WORK_SIDE

    print(f"1. decode cost per image (fresh subprocess each; firs.vision.decode, WORK_SIDE {WORK_SIDE})")
    print(f"{'input':30s} {'bytes':>10s} {'decode ms':>9s} {'peak MiB':>8s} {'est. MiB':>8s}  outcome")
    for row in report["decode"]:
        peak = f"{row['peak_growth_mib']:8.1f}" if "peak_growth_mib" in row else f"{'-':>8s}"
        estimate = f"{row['estimate_mib']:8.1f}" if row.get("estimate_mib") is not None else f"{'-':>8s}"
        ms = f"{row['decode_ms']:9.1f}" if "decode_ms" in row else f"{'-':>9s}"
        print(f"{row['label']:30s} {size_text(row['bytes']):>10s} {ms} {peak} {estimate}  {outcome_text(row)}")
    print(
        "(peak: VmHWM after the decode minus VmRSS before it, inside the child; est.: the decoder's header "
        "estimate, pixels after JPEG draft x bytes/pixel of the mode)"
    )
    worst = report["worst_accepted"]
    if worst:
        print(
            f"largest accepted decode peak: {worst['peak_growth_mib']:.1f} MiB ({worst['label']}); "
            f"MAX_DECODE_BYTES = {MAX_DECODE_BYTES / MIB:.0f} MiB"
        )
    if not all(row.get("hwm_reset", True) for row in report["decode"]):
        print("note: /proc/self/clear_refs could not reset VmHWM: peaks include the child's earlier high-water")
    print()
    bursts = report["bursts"]
    cfg = report["config"]
    print(
        f"2. bursts: firs serve --index {cfg['index']} --workers {SERVER_WORKERS} (fresh server each), "
        f"{CLIENTS} client threads, {cfg['seconds']:g} s, mode fine, every request a new (variant, top_k) pair"
    )
    if report.get("burst_note"):
        print(f"   {report['burst_note']}")
    names = [b["label"] for b in bursts]
    width = max(28, *(len(n) for n in names))
    print(f"{'':26s}" + "".join(f" {n:>{width}s}" for n in names))

    def line(title: str, cell: Callable[[dict[str, Any]], str]) -> None:
        print(f"{title:26s}" + "".join(f" {cell(b):>{width}s}" for b in bursts))

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    line("upload size", lambda b: size_text(b["upload_bytes"]))
    line("requests", lambda b: f"{b['requests']} in {b['seconds']:.1f} s")
    line("statuses", lambda b: " ".join(f"{k}:{v}" for k, v in b["statuses"].items()) or "-")
    line("answers/s", lambda b: f"{b['answers_per_s']:.2f}")
    line("latency p50 / p95 (200s)", lambda b: f"{ms(b['p50_ms'])} / {ms(b['p95_ms'])}")
    line("server decode p50", lambda b: ms(b["server_decode_p50_ms"]))
    line("cache hits", lambda b: str(b["cache_hits"]))
    line("server RSS before", lambda b: mib(b["server_rss_kib"]["before"]))
    line("server RSS peak", lambda b: f"{mib(b['server_rss_kib']['peak'])} ({b['server_rss_kib']['samples']} samples)")
    line(f"server RSS after (+{SETTLE_S:.0f} s)", lambda b: mib(b["server_rss_kib"]["after"]))
    line("server VmHWM", lambda b: mib(b["server_rss_kib"]["hwm"]))
    line("RSS after - before", lambda b: f"{b['server_rss_kib']['after_minus_before'] / 1024:+.0f} MiB")
    line("peak - before", lambda b: f"{(b['server_rss_kib']['peak'] - b['server_rss_kib']['before']) / 1024:+.0f} MiB")
    line("503 (all with Retry-After)", lambda b: f"{b['503']} ({'yes' if not b['503_without_retry_after'] else 'no'})")
    line("server log tracebacks", lambda b: str(b["server_log_tracebacks"]))
    for b in bursts:
        for text, count in b["errors"].items():
            print(f"unexpected answer in '{b['label']}' x{count}: {text}")
    print("verdict: " + ("ok" if report["ok"] else "FAILED (" + "; ".join(report["problems"]) + ")"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX, help="index to serve (default demo/index)")
    parser.add_argument("--seconds", type=float, default=20.0, help=f"length of each burst (at most {MAX_SECONDS:g})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--decode-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--name", default="image", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.decode_child is not None:
        return decode_child(args.decode_child, args.name)
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {MAX_SECONDS:g}]")
    if not (args.index / "manifest.json").is_file():
        if args.index != DEFAULT_INDEX:
            parser.error(f"{args.index} is not a FIRS index (no manifest.json)")
        print("demo/index is missing: building it with `firs demo`", file=sys.stderr)
        subprocess.run([str(Path(sys.executable).parent / "firs"), "demo"], check=True, stdout=subprocess.DEVNULL)

    def progress(text: str) -> None:
        if not args.json:
            print(text, file=sys.stderr, flush=True)

    decoded: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="firs-decode-") as tmp_dir:
        tmp = Path(tmp_dir)
        for item in INPUTS:
            progress(f"generating and decoding {item.label} ...")
            data = item.make(0)
            decoded.append(
                {"key": item.key, "label": item.label, "bytes": len(data), **measure_decode(item, data, tmp)}
            )
            del data

    accepted = [row for row in decoded if row.get("accepted")]
    worst = max(accepted, key=lambda row: row["peak_growth_mib"], default=None)
    sendable = [row for row in accepted if row["bytes"] <= UPLOAD_CAP and row["key"] != PHONE]
    heavy = max(sendable, key=lambda row: row["peak_growth_mib"], default=None)
    if heavy is not None:
        tied = [row for row in sendable if row["peak_growth_mib"] >= heavy["peak_growth_mib"] - TIE_MIB]
        heavy = next((row for row in tied if row["key"] == PREFERRED), heavy)
    note = ""
    if worst is not None and heavy is not None and heavy["key"] != worst["key"]:
        if worst["bytes"] > UPLOAD_CAP:
            note = (
                f"the largest accepted peak ({worst['label']}, {size_text(worst['bytes'])}) is over the "
                f"{UPLOAD_CAP // MIB} MiB upload cap: the burst posts the next heaviest, {heavy['label']}"
            )
        else:
            note = (
                f"the heavy burst posts {heavy['label']} ({heavy['peak_growth_mib']:.1f} MiB decode peak): within "
                f"{TIE_MIB:g} MiB of the largest ({worst['label']}, {worst['peak_growth_mib']:.1f} MiB)"
            )
    by_key = {item.key: item for item in INPUTS}
    plan = [by_key[heavy["key"]]] if heavy is not None else []
    plan.append(by_key[PHONE])
    bursts = []
    for item in plan:
        progress(f"generating {VARIANTS} variants of {item.label} ...")
        variants = [item.make(v + 1) for v in range(VARIANTS)]
        progress(f"burst with {item.label}: {CLIENTS} clients for {args.seconds:g} s ...")
        bursts.append(burst(args.index, item, variants, args.seconds))

    problems = []
    for b in bursts:
        if b["5xx"]:
            problems.append(f"{b['label']}: {b['5xx']} answers were 5xx other than 503")
        if b["503_without_retry_after"]:
            problems.append(f"{b['label']}: {b['503_without_retry_after']} 503s came without Retry-After")
        if b["no_answer"]:
            problems.append(f"{b['label']}: {b['no_answer']} requests got no answer")
        if not b["server_alive"]:
            problems.append(f"{b['label']}: the server died")
    if heavy is None:
        problems.append("no heavy input was accepted within the upload cap: no heavy burst")
    from firs.vision.decode import MAX_DECODE_BYTES

    report = {
        "config": {"index": str(args.index), "seconds": args.seconds, "clients": CLIENTS, "workers": SERVER_WORKERS},
        "max_decode_bytes": MAX_DECODE_BYTES,
        "decode": decoded,
        "worst_accepted": worst,
        "burst_note": note,
        "bursts": bursts,
        "problems": problems,
        "ok": not problems,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

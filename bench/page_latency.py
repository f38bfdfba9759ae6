"""The web page as a shopper times it: from choosing a photo to the results shown, in Debian's
Chromium (Playwright), desktop 1366x900 and phone 390x844, mode fine (the page's default).
Starts `firs serve` itself. Each photo is chosen once per screen; the server's answer cache
is defeated by re-encoding each photo with a different JPEG quality per screen.
    python bench/page_latency.py --index bench/out/dev-v6/index-base \
        --queries bench/out/dev-v5/street/queries.tsv --photos 20
"""

from __future__ import annotations

import argparse
import io
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import sync_playwright
from serving import free_port, start_server, stop_server, wait_ready

from firs.eval.queries import read_queries

SCREENS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


def phone_sized(path: Path, out: Path, quality: int) -> Path:
    """The photo enlarged to a phone camera's 4032 px long side, as phones upload them."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = 4032 / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    out.write_bytes(buffer.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True, help="firs eval's queries TSV (the photos)")
    parser.add_argument("--photos", type=int, default=21)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    photos = [query.path for query in read_queries(args.queries)][: args.photos]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(args.index, port, None, subprocess.DEVNULL)
    try:
        wait_ready(base, server)
        with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium)
            for number, (screen, viewport) in enumerate(SCREENS.items()):
                page = browser.new_page(viewport=viewport, is_mobile=screen == "phone")
                page.goto(base)
                page.wait_for_selector("#catalogue:not(:empty)")
                times = []
                for index, photo in enumerate(photos):  # the first one untimed: the page's own warm-up
                    path = phone_sized(Path(photo), Path(folder) / f"{screen}-{index}.jpg", 90 - number)
                    start = time.perf_counter()
                    page.set_input_files("#file", str(path))
                    page.wait_for_function(
                        "() => !document.body.classList.contains('busy')"
                        " && /matches|No /.test(document.getElementById('status').textContent)"
                    )
                    if index:
                        times.append((time.perf_counter() - start) * 1000)
                    page.evaluate("document.getElementById('status').textContent = ''")
                page.close()
                p50, p90 = np.percentile(times, [50, 90])
                shown = f"p50 {p50:.0f} ms, p90 {p90:.0f} ms (n={len(times)})"
                print(f"{screen:8s} 4032 px photos, choose -> results shown: {shown}")
            browser.close()
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()

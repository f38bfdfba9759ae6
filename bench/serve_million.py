"""`firs serve` over a million products: start-up, resident memory and search latency over HTTP.

This machine cannot embed a million pictures, so the index is assembled from a built one
(SOURCE_INDEX, e.g. the dev gallery after `firs reindex --whitening-dim 256 --compress sq8`):
each view's search vectors (whitened, the colour signature fused as the index stage does)
grown to --n by mixing pairs of real vectors with noise (bench/grown.py, as
bench/ann_million.py), an ANN of the source's form built over them, and a product store, tag
index and manifest for the n products (product i copies the metadata and labels of real
product i mod R; pictures and the network are the source's). Then `firs serve` starts on it
in a fresh process: seconds to healthy and to the first answer, resident memory, and p50/p99
of simple and fine searches over HTTP with the photos of QUERIES (one client, each photo once).

    python bench/serve_million.py SOURCE_INDEX QUERIES.tsv [--n 1000000] [--out DIR] [--requests 200]

The assembled index is kept in --out (default bench/out/serve-N) and reused when it exists.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from grown import grow
from http_latency import post_photo
from serving import free_port, start_server, stop_server, wait_ready

from firs.catalog.product import Product
from firs.catalog.store import ProductStore
from firs.eval.queries import read_queries
from firs.index import directory as layout
from firs.index.ann import AnnIndex, HnswParams
from firs.index.postings import Postings
from firs.index.whitening import Whitening
from firs.pipeline.index_stage import _search_vectors
from firs.search.engine import _colour_weight
from firs.tagging.tagger import Tag

BLOCK = 50_000


def grown_view(source: Path, view: str, info: dict, n: int, target: Path, params: HnswParams) -> None:
    folder = source / layout.view_dir(view)
    whitening = Whitening.load(folder / layout.WHITENING)
    real = np.concatenate(list(_search_vectors(source / layout.SHARDS, view, whitening, _colour_weight(info, folder))))
    vectors = grow(real, n, np.random.default_rng(0))
    del real

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, n, BLOCK):
            yield vectors[start : start + BLOCK]

    out = target / layout.view_dir(view)
    out.mkdir(parents=True)
    shutil.copy(folder / layout.WHITENING, out / layout.WHITENING)
    AnnIndex.from_blocks(functools.partial(blocks), params).save(out / layout.ANN)


def assemble(source: Path, n: int, out: Path) -> None:
    manifest = layout.read_manifest(source)
    ann = manifest["ann"]
    params = HnswParams(ann["m"], ann["ef_construction"], ann["ef_search"], ann.get("storage", "flat"))
    real_store = ProductStore.open_readonly(source / layout.STORE)
    real_ids = real_store.ids_by_label()
    real = real_store.by_labels(list(range(len(real_ids))))
    real_tags = real_store.tags_of(list(range(len(real_ids))))
    with layout.atomic_index_dir(out) as staging:
        start = time.perf_counter()
        store = ProductStore.create(staging / layout.STORE)
        ids = [f"g{i:07d}" for i in range(n)]

        def products() -> Iterator[Product]:
            for i, product_id in enumerate(ids):
                record = real[i % len(real)]
                yield Product(
                    id=product_id,
                    image=f"/catalogue/{product_id}.jpg",
                    title=record.get("title") or product_id,
                    brand=record.get("brand") or "",
                    categories=list(record.get("categories") or []),
                )

        store.add(products())
        store.assign_labels(ids)
        tags = {i: [Tag.from_dict(t) for t in real_tags.get(i % len(real), [])] for i in range(n)}
        store.add_tags(tags)
        store.commit()
        store.close()
        Postings.build((t.label, i) for i, ts in tags.items() for t in ts).save(staging / layout.POSTINGS)
        shutil.copy(source / layout.IMAGES, staging / layout.IMAGES)
        shutil.copytree(source / layout.NETWORK, staging / layout.NETWORK)
        print(f"store, tags, pictures: {time.perf_counter() - start:.0f} s", flush=True)
        for view, info in manifest["views"].items():
            start = time.perf_counter()
            grown_view(source, view, info, n, staging, params)
            print(f"{view}: grown to {n} and indexed in {time.perf_counter() - start:.0f} s", flush=True)
        kept = {k: v for k, v in manifest.items() if k not in ("files", "format_version", "shards", "reindexed")}
        kept["counts"] = {"read": n, "indexed": n, "skipped": 0, "failed": 0}
        kept["grown_from"] = str(source)
        layout.write_manifest(staging, kept)


def memory(pid: int) -> dict[str, float]:
    with open(f"/proc/{pid}/status") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("queries", type=Path)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    out = args.out or Path(__file__).parent / "out" / f"serve-{args.n}"
    if not (out / layout.MANIFEST).is_file():
        assemble(args.source, args.n, out)
    size = sum(p.stat().st_size for p in out.resolve().rglob("*") if p.is_file()) / 2**20
    print(f"index {out}: {args.n} products, {size:.0f} MB on disk")

    photos = [q.path.read_bytes() for q in read_queries(args.queries)[: 2 * args.requests + 1]]
    port = free_port()
    start = time.perf_counter()
    server = start_server(out, port, None, open(out.parent / f"{out.name}.serve.log", "wb"))  # noqa: SIM115
    try:
        wait_ready(f"http://127.0.0.1:{port}", server, timeout_s=600)
        healthy = time.perf_counter() - start
        first, status, _ = post_photo(port, photos[-1], "mode=fine&top_k=10")
        print(f"start: healthy after {healthy:.1f} s, first fine answer (status {status}) {first:.0f} ms later")
        idle = memory(server.pid)
        print(f"resident after start: {idle['VmRSS']:.0f} MB (peak so far {idle['VmHWM']:.0f} MB)")
        for number, mode in enumerate(("simple", "fine")):
            batch = photos[number * args.requests : (number + 1) * args.requests]
            times = []
            for photo in batch:
                elapsed, status, answer = post_photo(port, photo, f"mode={mode}&top_k=10")
                if status == 200 and answer.get("results"):
                    times.append(elapsed)
            times.sort()
            p50, p99 = statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]
            print(f"{mode}: {len(times)}/{len(batch)} answered, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        after = memory(server.pid)
        print(f"resident after {2 * args.requests} searches: {after['VmRSS']:.0f} MB (peak {after['VmHWM']:.0f} MB)")
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()

"""efSearch against recall@10 and time, per view, on a built index.

    python bench/ef_search.py --index INDEX [--queries QUERIES.tsv] [--n 300] [--sample 500]

Query sets per view: the probes the build tunes on (`probe_queries`: catalogue vectors pushed off
the catalogue by noise), the catalogue vectors themselves (each left out of its own answer), and,
with --queries, real photos embedded as `firs search` embeds them (fine: the garment located and
cut out). Recall@10 is against exact search over the same vectors; ms is per query, one at a
time. Prints a row per efSearch, and the least that reaches the target for each set.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

from firs.eval.queries import read_queries
from firs.index.ann import EF_LADDER, TARGET_RECALL, AnnIndex, probe_queries, recall_at
from firs.search.engine import SearchEngine

K = 10


def sweep(ann: AnnIndex, queries: np.ndarray, own: np.ndarray | None = None) -> list[tuple[int, float, float]]:
    """(ef, recall@10, ms per query) over the ladder; `own`: each query's own label, left out."""
    extra = 0 if own is None else 1
    truth = ann.exact_top(queries, K + extra)
    if own is not None:
        truth = np.array([row[row != label][:K] for row, label in zip(truth, own, strict=True)])
    rows = []
    for ef in EF_LADDER:
        searched = ann.with_ef_search(ef)
        start = time.perf_counter()
        found = [searched.query(vector, K + extra)[0][0] for vector in queries]
        ms = (time.perf_counter() - start) * 1000 / len(queries)
        if own is not None:
            found = [labels[labels != label][:K] for labels, label in zip(found, own, strict=True)]
        rows.append((ef, recall_at(found, truth, K), ms))
    return rows


def report(title: str, rows: list[tuple[int, float, float]]) -> None:
    print(f"  {title}")
    for ef, recall, ms in rows:
        print(f"    ef {ef:4d}  recall@10 {recall:.4f}  {ms:6.3f} ms")
    chosen = next((ef for ef, recall, _ in rows if recall >= TARGET_RECALL), None)
    print(f"    least efSearch with recall@10 >= {TARGET_RECALL}: {chosen}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, help="photos to embed as real queries")
    parser.add_argument("--n", type=int, default=300, help="real queries")
    parser.add_argument("--sample", type=int, default=500, help="probes and catalogue vectors")
    args = parser.parse_args()
    engine = SearchEngine(args.index)
    photos = [Image.open(q.path).convert("RGB") for q in read_queries(args.queries)[: args.n]] if args.queries else []
    print(f"machine: {platform.processor() or platform.machine()}, index {args.index} ({len(engine)} products)")
    for view, state in engine.views.items():
        ann = state.ann.base
        print(f"view {view}: {ann.index.d} dims, {ann.params.storage}, searched with efSearch {ann.params.ef_search}")
        report(f"{args.sample} probes (what the build tunes on)", sweep(ann, probe_queries(ann, args.sample)))
        own = np.sort(np.random.default_rng(0).choice(len(ann), min(args.sample, len(ann)), replace=False))
        report(f"{len(own)} catalogue vectors, each left out", sweep(ann, ann.index.reconstruct_batch(own), own))
        if photos:
            views = [engine.localiser.locate(photo).items[0].view for photo in photos] if view == "fine" else photos
            real = np.stack([engine.vector_of(picture, view, classify=False)[0] for picture in views])
            report(f"{len(real)} photos from {args.queries}", sweep(ann, real))


if __name__ == "__main__":
    main()

"""Tag mode on the dev set, query by query: is the query's top label right, does the candidate
set hold the product, and what does a wrong label cost (fine vs tag recall, split by it)?

"Right" means the query's top garment type is among the correct product's type labels (the
dev catalogue has no metadata, so both sides are tagged by the same image tagger).
    python bench/tag_labels.py --index bench/out/dev-index --queries ../shared/data/viton-dev/queries.tsv [--n 1000]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from firs.eval.queries import read_queries
from firs.runtime import tune_allocator
from firs.search.engine import SearchEngine
from firs.search.tag_policy import query_tags, tag_candidates, vote_types
from firs.vision.decode import load_image

DEPTH = 100


def rank_of(results: list[dict], product_id: str) -> int | None:
    ids = [r["id"] for r in results]
    return ids.index(product_id) + 1 if product_id in ids else None


def recall(ranks: list[int | None], k: int) -> float:
    return float(np.mean([r is not None and r <= k for r in ranks])) if ranks else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--head", action="store_true", help="query types from the ImageNet head, not the neighbours")
    args = parser.parse_args()
    tune_allocator()
    engine = SearchEngine(args.index)
    queries = read_queries(args.queries)[: args.n]
    rows = []
    for query in tqdm(queries, desc="tag labels"):
        located = engine.localiser.locate(load_image(query.path))
        item = located.items[0]
        vector, probabilities = engine.vector_of(item.view, "fine")
        region = None if located.fallback else item.region.name
        tags = query_tags(
            probabilities, item.view, region, [] if args.head else vote_types(engine.nearest_labels(vector))
        )
        allowed, rule = tag_candidates(engine.postings, tags, DEPTH, None)
        truth_label = engine.store.label_of(query.product_id)
        truth_types = {t["label"] for t in engine.store.tags_of([truth_label]).get(truth_label, [])}
        top = next((t.label for t in tags if t.label.startswith("type:")), "(none)")
        rows.append(
            {
                "top": top,
                "right": top in truth_types,
                "held": allowed is None or truth_label in set(allowed.tolist()),
                "rule": rule,
                "fine": rank_of(engine.neighbours(vector, DEPTH, "fine"), query.product_id),
                "tag": rank_of(engine.neighbours(vector, DEPTH, "fine", allowed), query.product_id),
            }
        )
    n = len(rows)
    print(f"{n} queries; top query label right in {sum(r['right'] for r in rows) / n:.3f}")
    print("top query labels:", ", ".join(f"{k} {v}" for k, v in Counter(r["top"] for r in rows).most_common(6)))
    print("candidate rules:", ", ".join(f"{k} {v}" for k, v in Counter(r["rule"] for r in rows).most_common(6)))
    print(f"candidate set holds the product: {sum(r['held'] for r in rows) / n:.3f}")
    print(f"{'queries':22s} {'n':>5s}  fine R@1/10/20        tag R@1/10/20")
    for name, subset in (
        ("all", rows),
        ("top label right", [r for r in rows if r["right"]]),
        ("top label wrong", [r for r in rows if not r["right"]]),
    ):
        cells = [
            "/".join(f"{recall([r[mode] for r in subset], k):.3f}" for k in (1, 10, 20)) for mode in ("fine", "tag")
        ]
        print(f"{name:22s} {len(subset):5d}  {cells[0]:20s}  {cells[1]}")


if __name__ == "__main__":
    main()

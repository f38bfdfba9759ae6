"""Fine-search recall of held-out queries with and without some products in the gallery (issue 10).

A model trained on a catalogue learns its products — the distractors too, when made-up pairs
train them (`firs train --made-up-pairs`). To see how much of a gain would survive a gallery of
products the model never saw, each query's fine answers (the index's own search, top 100) are
read twice: as they are, and with the products whose ids start with PREFIX dropped from the
list (for the dev gallery, `g`: the distractors). Also counts where the wrong first answers
come from: training products, other held-out products, or the dropped ones.

    python bench/gallery_split.py --queries bench/out/dev-x2/street/queries.tsv \\
        --heldout bench/out/dev-x2/heldout.tsv bench/out/dev-e2/index-model bench/out/dev-x2/index-model
"""

from __future__ import annotations

import argparse
from pathlib import Path

from firs.eval.metrics import RECALL_AT, recall_at
from firs.eval.queries import read_queries
from firs.search.engine import Query, SearchEngine

DEPTH = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("indexes", type=Path, nargs="+", metavar="INDEX_DIR")
    parser.add_argument("--queries", type=Path, required=True, help="the queries to search (firs eval's format)")
    parser.add_argument("--heldout", type=Path, required=True, help="the held-out products' queries file")
    parser.add_argument("--drop", default="g", metavar="PREFIX", help="ids of the products to drop (g)")
    args = parser.parse_args()
    held_out = {q.product_id for q in read_queries(args.heldout)}
    queries = read_queries(args.queries)
    for index in args.indexes:
        engine = SearchEngine(index)
        whole: list[int | None] = []
        kept: list[int | None] = []
        wrong = {"training": 0, "held-out": 0, "dropped": 0}
        for query in queries:
            ids = [r["id"] for r in engine.search(Query(image=query.path, k=DEPTH, mode="fine")).results]
            rest = [i for i in ids if not i.startswith(args.drop)]
            whole.append(ids.index(query.product_id) + 1 if query.product_id in ids else None)
            kept.append(rest.index(query.product_id) + 1 if query.product_id in rest else None)
            if ids and ids[0] != query.product_id:
                first = ids[0]
                source = "held-out" if first in held_out else "training"
                wrong["dropped" if first.startswith(args.drop) else source] += 1
        for name, ranks in (("whole gallery", whole), (f"without {args.drop}*", kept)):
            recalls = " / ".join(f"{recall_at(ranks, k):.3f}" for k in RECALL_AT)
            print(f"{index}: {name}: R@{'/'.join(map(str, RECALL_AT))} {recalls}")
        print(f"{index}: wrong first answers: {wrong}")


if __name__ == "__main__":
    main()

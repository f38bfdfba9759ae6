"""How much a better garment mask would buy a trained index (issue 10).

Runs the held-out queries that have a parse map (viton-dev/parse, LIP labels) through a built
index's real fine search four times, changing only the garment mask the localiser cuts the
garment out with: its own (GrabCut seeded by the colour classes), the parse map's upper-body
garment (labels 5, 6, 7: the oracle), the colour classes alone, and the person mask inside the
body region. Prints R@1 / R@5 / R@20 for each.

    python bench/mask_recall.py --run bench/out/dev-t6

RUN is a bench/devset_train.sh output folder (heldout.tsv, index-model/).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

import firs.vision.localiser as localiser
from firs.eval.queries import read_queries
from firs.search.engine import Query, SearchEngine

PARSE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "viton-dev" / "parse"
GARMENT_LABELS = (5, 6, 7)  # upper clothes, dress, coat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("bench/out/dev-t6"))
    parser.add_argument("--parse", type=Path, default=PARSE)
    args = parser.parse_args()
    engine = SearchEngine(args.run / "index-model")
    queries = [q for q in read_queries(args.run / "heldout.tsv") if (args.parse / f"{Path(q.path).stem}.png").is_file()]
    print(f"{len(queries)} held-out queries with a parse map")
    own = localiser.garment_mask
    current: dict[str, Path] = {}

    def oracle(rgb: np.ndarray, pose: Any, item: Any, grabcut: bool = True) -> np.ndarray:
        mask = np.isin(np.asarray(Image.open(current["parse"])), GARMENT_LABELS).astype(np.uint8)
        return cv2.resize(mask, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST) > 0

    def colour_only(rgb: np.ndarray, pose: Any, item: Any, grabcut: bool = True) -> np.ndarray:
        return own(rgb, pose, item, grabcut=False)

    def person_in_region(rgb: np.ndarray, pose: Any, item: Any, grabcut: bool = True) -> np.ndarray:
        return item.mask & (pose.mask > 0.5)

    masks = {"the localiser's (GrabCut)": own, "oracle (parse map)": oracle}
    masks |= {"colour classes alone": colour_only, "person mask in the region": person_in_region}
    for name, mask in masks.items():
        localiser.garment_mask = mask  # type: ignore[assignment]
        ranks = []
        for query in queries:
            current["parse"] = args.parse / f"{Path(query.path).stem}.png"
            ids = [r["id"] for r in engine.search(Query(image=query.path, k=100, mode="fine")).results]
            ranks.append(ids.index(query.product_id) + 1 if query.product_id in ids else 0)
        r = np.array(ranks)
        found = [float(np.mean((r > 0) & (r <= k))) for k in (1, 5, 20)]
        print(f"{name:<28} R@1 {found[0]:.3f}  R@5 {found[1]:.3f}  R@20 {found[2]:.3f}", flush=True)
    localiser.garment_mask = own  # type: ignore[assignment]


if __name__ == "__main__":
    main()

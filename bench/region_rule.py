"""Which region should `--region auto` search? Checked on myntra-1k photos of a person wearing
the product: the truth is the body region of the product's articleType (shirts: upper,
trousers: lower, dresses: full, shoes: feet). Rules compared, on the photos where BlazePose
finds a person:
  order  the first region found in AUTO_ORDER (upper, full, lower, feet);
  score  the region whose garment's best match in the catalogue (the product itself left
         out) scores highest;
  vote   the order rule's garment, then the body region of the type its nearest catalogue
         products' metadata votes for (the product itself left out), when that region was
         found: FIRS's `auto` (SearchEngine.catalogue_region).
    python bench/region_rule.py --index bench/out/myntra-index [--data ../shared/data/myntra-1k]
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from firs.runtime import tune_allocator
from firs.search.engine import SearchEngine
from firs.tagging.vocabulary import labels_in_text, region_of
from firs.vision.decode import load_image
from firs.vision.localiser import AUTO_ORDER

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "myntra-1k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    tune_allocator()
    engine = SearchEngine(args.index)
    with (args.data / "styles.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    outcomes: Counter[str] = Counter()
    found_sets: Counter[str] = Counter()
    for row in tqdm(rows, desc="regions"):
        types = [label for label in labels_in_text(row["articleType"]) if label.startswith("type:")]
        truth = region_of(types[0]) if types else None
        if truth not in AUTO_ORDER:
            continue
        located = engine.localiser.locate(load_image(args.data / "images" / f"{row['id']}.jpg"), all_items=True)
        if located.fallback:
            continue
        regions = {item.region.name: item for item in located.items}
        if "upper" in regions:  # all_items leaves out full (it overlaps upper and lower): add it
            full = engine.localiser.locate(
                load_image(args.data / "images" / f"{row['id']}.jpg"), region="full", strict=False
            )
            regions.update({item.region.name: item for item in full.items})
        found_sets[",".join(sorted(regions))] += 1
        order = next(name for name in AUTO_ORDER if name in regions)
        own = engine.store.label_of(row["id"])
        best = {}
        for name, item in regions.items():
            vector, _ = engine.vector_of(item.view, "fine")
            labels, scores = engine.views["fine"].ann.query(vector, 2)
            best[name] = next(float(s) for label, s in zip(labels[0], scores[0], strict=True) if label != own)
        score = max(best, key=best.get)
        vector, _ = engine.vector_of(regions[order].view, "fine")
        near = engine.nearest_labels(vector, exclude=own)
        vote = engine.catalogue_region(near, order, list(regions)) or order
        outcomes["photos"] += 1
        outcomes["truth present"] += truth in regions
        outcomes["order right"] += order == truth
        outcomes["score right"] += score == truth
        outcomes["vote right"] += vote == truth
        outcomes[f"truth {truth}: vote right"] += vote == truth
        outcomes[f"truth {truth}"] += 1
        outcomes[f"truth {truth}: order right"] += order == truth
        outcomes[f"truth {truth}: score right"] += score == truth
    n = outcomes["photos"]
    print(
        f"{n} photos of a person wearing a product with a known region; the true region was found in "
        f"{outcomes['truth present'] / n:.3f}"
    )
    order, score = outcomes["order right"] / n, outcomes["score right"] / n
    vote = outcomes["vote right"] / n
    print(f"rule order: right {order:.3f};  rule score: right {score:.3f};  rule vote (FIRS auto): right {vote:.3f}")
    for region in AUTO_ORDER:
        m = outcomes[f"truth {region}"]
        if m:
            print(
                f"  truth {region:5s} n {m:4d}  order {outcomes[f'truth {region}: order right'] / m:.2f}"
                f"  score {outcomes[f'truth {region}: score right'] / m:.2f}"
                f"  vote {outcomes[f'truth {region}: vote right'] / m:.2f}"
            )
    print("regions found:", ", ".join(f"{k} {v}" for k, v in found_sets.most_common(6)))


if __name__ == "__main__":
    main()

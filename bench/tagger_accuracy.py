"""Image-only tagger accuracy against myntra-1k's metadata (articleType, baseColour).

Each product photo goes through what `firs build` does when a catalogue has no metadata:
the fine view (tight crop, or the garment cut out when worn), the ImageNet head mapped
onto the vocabulary, the dominant colour. Truth: articleType / baseColour mapped onto the
same vocabulary by the words that name them (products whose type has no vocabulary word
are counted apart).

With --index (a `firs build` of styles.csv), also the neighbour vote tag mode uses for
queries: each product's type voted by its 10 nearest other products' metadata types
(leave-one-out), in each view.
    python bench/tagger_accuracy.py [--data ../shared/data/myntra-1k] [--index bench/out/myntra-index]
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from firs.catalog.store import ProductStore
from firs.index import directory as layout
from firs.index.shards import read_column
from firs.index.whitening import Whitening
from firs.pipeline.views import fine_view
from firs.runtime import default_threads, tune_allocator
from firs.search.tag_policy import VOTERS, vote_types
from firs.tagging.tagger import classifier_tags, colour_tags
from firs.tagging.vocabulary import labels_in_text
from firs.vision.decode import load_image
from firs.vision.embedder import Embedder
from firs.vision.localiser import GarmentLocaliser

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "myntra-1k"


def first(labels: list[str], kind: str) -> str | None:
    return next((label.split(":", 1)[1] for label in labels if label.startswith(f"{kind}:")), None)


def metadata_type(tags: list[dict]) -> str | None:
    return next((t["label"] for t in tags if t["label"].startswith("type:") and t["source"] == "metadata"), None)


def neighbour_vote_accuracy(index: Path) -> None:
    store = ProductStore.open_readonly(index / layout.STORE)
    for view in ("fine", "simple"):
        ids, features = read_column(index / layout.SHARDS, view)
        vectors = Whitening.load(index / layout.view_dir(view) / layout.WHITENING).apply(features)
        labels = [store.label_of(i) for i in ids]
        tags = store.tags_of(labels)
        truth = [metadata_type(tags.get(label, [])) for label in labels]
        scores = vectors @ vectors.T
        np.fill_diagonal(scores, -np.inf)
        top1 = top2 = n = 0
        for q in range(len(ids)):
            if truth[q] is None:
                continue
            near = np.argsort(-scores[q])[:VOTERS]
            voters = [
                (
                    float(scores[q, j]),
                    [{"label": truth[j], "source": "metadata", "confidence": 1.0}] if truth[j] else [],
                )
                for j in near
            ]
            voted = [t.label for t in vote_types(voters)]
            n += 1
            top1 += bool(voted) and voted[0] == truth[q]
            top2 += truth[q] in voted
        print(
            f"neighbour vote ({view} view, {VOTERS} voters, leave-one-out): top-1 {top1 / n:.3f}, top-2 {top2 / n:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--index", type=Path, help="an index of the same catalogue: neighbour-vote accuracy")
    args = parser.parse_args()
    if args.index:
        neighbour_vote_accuracy(args.index)
    tune_allocator()
    embedder, localiser = Embedder(threads=default_threads()), GarmentLocaliser()
    with (args.data / "styles.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    type_pairs, colour_pairs, top2, untyped = [], [], 0, Counter()
    for row in tqdm(rows, desc="tag"):
        image = load_image(args.data / "images" / f"{row['id']}.jpg")
        truth = first(labels_in_text(row["articleType"]), "type")
        view, _note, _region = fine_view(image, [], localiser)
        _features, probabilities = embedder.embed_and_classify(view, "crop")
        predicted = [t.label.split(":", 1)[1] for t in classifier_tags(probabilities)]
        if truth is None:
            untyped[row["articleType"]] += 1
        else:
            type_pairs.append((truth, predicted[0] if predicted else "(none)"))
            top2 += truth in predicted
        colour_truth = first(labels_in_text(row["baseColour"]), "colour")
        colours = colour_tags(view)
        if colour_truth:
            colour_pairs.append((colour_truth, colours[0].label.split(":", 1)[1] if colours else "(none)"))
    n = len(type_pairs)
    print(f"{len(rows)} products; {n} with an articleType in the vocabulary; not in it: {dict(untyped)}")
    print(f"type top-1 accuracy {sum(t == p for t, p in type_pairs) / n:.3f}, top-2 {top2 / n:.3f}")
    print("per true type: n, top-1 accuracy, most frequent predictions")
    for truth, count in Counter(t for t, _ in type_pairs).most_common():
        predictions = Counter(p for t, p in type_pairs if t == truth)
        right = predictions[truth] / count
        common = ", ".join(f"{p} {c}" for p, c in predictions.most_common(3))
        print(f"  {truth:12s} {count:4d}  {right:.2f}  {common}")
    m = len(colour_pairs)
    print(f"colour top-1 accuracy {sum(t == p for t, p in colour_pairs) / m:.3f} over {m} products")
    for truth, count in Counter(t for t, _ in colour_pairs).most_common():
        predictions = Counter(p for t, p in colour_pairs if t == truth)
        common = ", ".join(f"{p} {c}" for p, c in predictions.most_common(3))
        print(f"  {truth:8s} {count:4d}  {predictions[truth] / count:.2f}  {common}")


if __name__ == "__main__":
    main()

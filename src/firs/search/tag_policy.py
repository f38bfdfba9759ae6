"""Tag mode: the query garment's labels, and the candidate products they select.

The garment's types come from its nearest catalogue products: their type labels (from the
catalogue's metadata where it has them), voted by similarity. On myntra-1k, leave-one-out,
that names a product's articleType right 72 % of the time (top-2: 84 %) in the fine view,
against 29 % (39 %) for the ImageNet head, which has no class for shirts, tops, heels or
trousers (bench/tagger_accuracy.py, docs/architecture.md). The head is the fallback when
the neighbours carry no type.

The labels act as words and the catalogue's labels as documents: the postings of the
query's top-2 garment types give the candidates (as eBay and Alibaba search within the
top predicted categories); the vectors then rank only those. When that set cannot fill
the k results asked for, the rule widens to the garment's body region, then to every
product, and the answer says which rule it used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from ..index.postings import Postings
from ..tagging.tagger import Tag, classifier_tags, colour_tags, region_tag
from ..tagging.vocabulary import region_of

TOP_TYPES = 2
VOTERS = 10  # nearest products whose type labels vote


# (similarity, that product's labels as the store gives them: dicts with label, source, confidence)
Neighbour = tuple[float, list[dict[str, Any]]]


def vote_types(near: list[Neighbour], sources: tuple[str, ...] | None = None) -> list[Tag]:
    """Top types among the neighbours' type labels (only those from `sources`, when given),
    each voting with similarity x confidence; confidences are vote shares."""
    votes: dict[str, float] = {}
    for similarity, labels in near:
        for tag in labels:
            if tag["label"].startswith("type:") and (sources is None or tag["source"] in sources):
                votes[tag["label"]] = votes.get(tag["label"], 0.0) + max(similarity, 0.0) * tag["confidence"]
    total = sum(votes.values())
    if total <= 0:
        return []
    ranked = sorted(votes.items(), key=lambda item: -item[1])[:TOP_TYPES]
    return [Tag(label, "neighbours", weight / total) for label, weight in ranked]


def query_tags(probabilities: np.ndarray, view: Image.Image, region: str | None, voted: list[Tag]) -> list[Tag]:
    """A query garment's labels: its types (the neighbours' vote, else the head's), the
    localiser's region, the colour."""
    tags = list(voted) or classifier_tags(probabilities, top=TOP_TYPES)
    if region:
        tags.append(region_tag(region))
    return tags + colour_tags(view)


def tag_candidates(
    postings: Postings, tags: list[Tag], k: int, allowed: np.ndarray | None
) -> tuple[np.ndarray | None, str]:
    """(candidate ANN labels, the rule that chose them); None means every product (or every
    product the filters allow)."""
    types = [t.label for t in tags if t.label.startswith("type:")][:TOP_TYPES]
    regions = [t.label for t in tags if t.label.startswith("region:")]
    if not regions and types and region_of(types[0]):
        regions = [f"region:{region_of(types[0])}"]
    rules = []
    if types:
        rules.append((" or ".join(types), types))
    if regions:
        rules.append((regions[0], regions[:1]))
    for name, labels in rules:
        candidates = postings.union(labels)
        if allowed is not None:
            candidates = np.intersect1d(candidates, allowed, assume_unique=True)
        if len(candidates) >= k:
            return candidates, name
    return allowed, "all products (too few tagged candidates)"

"""A view's search vectors with the garment's colour signature beside its embedding.

The fused score of a photo and a product is (cos(embeddings) + w · signatures' dot) / (1 + w).
Both parts are unit vectors, so putting √(1/(1+w))·embedding and √(w/(1+w))·signature side by
side makes the ANN's inner product exactly that score: no re-ranking stage, filters and
"more like this" see the same score. The weight is chosen on the dev set (docs/architecture.md,
"Colour signature"); 0 leaves the plain embedding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..vision import colour_signature
from .whitening import Whitening

DEFAULT_WEIGHT = 0.6  # beside a trained model's embedding (the default signature kind; an index records its own)
UNTRAINED_WEIGHT = 1.0  # beside the ImageNet features, PCA-whitened: they want more colour and pattern


def default_weight(learned: bool) -> float:
    """`firs build`'s weight when none is given: the best measured for the embedding beside it
    (docs/architecture.md, "Colour and pattern, again")."""
    return DEFAULT_WEIGHT if learned else UNTRAINED_WEIGHT


def catalogue_vectors(raw: np.ndarray, colours: np.ndarray | None, whitening: Whitening, weight: float) -> np.ndarray:
    """A view's catalogue search vectors from raw features: whitened (or mapped by a model's
    catalogue head), the colour signature beside them where the view weights it."""
    vectors = whitening.apply(raw)
    return vectors if colours is None or weight <= 0 else fuse(vectors, colours, weight)


def fuse(embeddings: np.ndarray, signatures: np.ndarray, weight: float) -> np.ndarray:
    """(n, d) unit embeddings and (n, SIZE) signatures -> (n, d + SIZE) float32."""
    scale = np.float32(1.0 / np.sqrt(1.0 + weight))
    parts = [np.atleast_2d(embeddings) * scale, np.atleast_2d(signatures) * scale * np.float32(np.sqrt(weight))]
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def manifest_section(weight: float, kind: str) -> dict[str, object]:
    return {
        "weight": weight,
        "kind": kind,
        "dims": colour_signature.size(kind),
        "signature": colour_signature.describe(kind),
        "score": "(cosine + weight * signature dot) / (1 + weight)",
    }


def signature_kind(manifest: dict[str, Any], view: str) -> str:
    """The kind of garment signature an index's shards hold for `view` and its searches compute:
    the shards section names it (also where the view has no colour weight), else the view's
    colour section; indexes made before there were kinds hold the legacy one."""
    named = manifest.get("shards", {}).get("signature") or manifest["views"].get(view, {}).get("colour", {}).get("kind")
    return colour_signature.check_kind(str(named or colour_signature.LEGACY_KIND))


def check_weight(weight: float) -> float:
    if not np.isfinite(weight) or weight < 0:
        raise ValueError(f"colour weight must be a finite number >= 0, not {weight}")
    return float(weight)

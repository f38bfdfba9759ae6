"""A view's search vectors with the garment's colour signature beside its embedding.

The fused score of a photo and a product is (cos(embeddings) + w · signatures' dot) / (1 + w).
Both parts are unit vectors, so putting √(1/(1+w))·embedding and √(w/(1+w))·signature side by
side makes the ANN's inner product exactly that score: no re-ranking stage, filters and
"more like this" see the same score. The weight is chosen on the dev set (docs/architecture.md,
"Colour signature"); 0 leaves the plain embedding.
"""

from __future__ import annotations

import numpy as np

from ..vision.colour_signature import BINS, SIZE
from .whitening import Whitening

DEFAULT_WEIGHT = 0.4


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


def manifest_section(weight: float) -> dict[str, object]:
    return {
        "weight": weight,
        "dims": SIZE,
        "signature": f"square-rooted {BINS}x{BINS}x{BINS} RGB histogram of the prepared picture's non-white pixels",
        "score": "(cosine + weight * signature dot) / (1 + weight)",
    }


def check_weight(weight: float) -> float:
    if not np.isfinite(weight) or weight < 0:
        raise ValueError(f"colour weight must be a finite number >= 0, not {weight}")
    return float(weight)

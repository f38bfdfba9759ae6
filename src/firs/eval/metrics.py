"""Retrieval metrics with exactly one correct product per query."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RECALL_AT = (1, 5, 10, 20)


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    """Share of queries whose correct product is within the top k (rank 1 = first)."""
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def mean_average_precision(ranks: Sequence[int | None]) -> float:
    """With one relevant item, AP is 1/rank (0 when not retrieved); mAP is its mean."""
    if not ranks:
        return 0.0
    return sum(1.0 / r for r in ranks if r is not None) / len(ranks)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    array = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(array, 50)), 2), "p95": round(float(np.percentile(array, 95)), 2)}

"""More vectors than the dev set has: real ones mixed in pairs, with noise (same distribution shape, no duplicates).

Shared by the scale benchmarks (ann_compare, ann_million, build_memory); the noise's length
does not depend on the dimension (0.02 a dimension at 1024).
"""

from __future__ import annotations

import numpy as np


def pairs(count: int, real: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which real rows each new row mixes, and with what weight."""
    i, j = rng.integers(0, real, count), rng.integers(0, real, count)
    return i, j, rng.uniform(0.55, 0.9, (count, 1)).astype(np.float32)


def mixed(values: np.ndarray, i: np.ndarray, j: np.ndarray, weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = weight * values[i] + (1 - weight) * values[j]
    out += rng.normal(0, 0.02 / np.sqrt(values.shape[1] / 1024), out.shape).astype(np.float32)
    return out


def grow(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`base` and n - len(base) mixed rows, all L2-normalised."""
    i, j, weight = pairs(n - len(base), len(base), rng)
    out = np.concatenate([base, mixed(base, i, j, weight, rng)])
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

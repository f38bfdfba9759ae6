"""The approximate nearest-neighbour index: hnswlib HNSW on L2-normalised vectors.

hnswlib was chosen over faiss (IndexHNSWFlat) and usearch by bench/ann_compare.py:
see docs/architecture.md for the numbers. Inner product on unit vectors = cosine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import hnswlib
import numpy as np

from ..errors import IndexFormatError


@dataclass(frozen=True)
class HnswParams:
    m: int = 32
    ef_construction: int = 200
    ef_search: int = 128

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class AnnIndex:
    def __init__(self, index: hnswlib.Index, params: HnswParams) -> None:
        self.index = index
        self.params = params

    @classmethod
    def build(cls, vectors: np.ndarray, params: HnswParams | None = None, threads: int = -1) -> AnnIndex:
        params = params or HnswParams()
        n, dim = vectors.shape
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=max(1, n), ef_construction=params.ef_construction, M=params.m)
        if n:
            index.add_items(vectors, np.arange(n), num_threads=threads)
        index.set_ef(params.ef_search)
        return cls(index, params)

    @classmethod
    def load(cls, path: Path, dim: int, count: int, params: HnswParams) -> AnnIndex:
        index = hnswlib.Index(space="ip", dim=dim)
        try:
            index.load_index(str(path), max_elements=max(1, count))
        except (RuntimeError, ValueError, OSError) as exc:
            raise IndexFormatError(f"{path}: ANN index unreadable ({exc})") from None
        if index.get_current_count() != count:
            raise IndexFormatError(
                f"{path}: ANN index holds {index.get_current_count()} vectors, manifest says {count}"
            )
        index.set_ef(params.ef_search)
        return cls(index, params)

    def save(self, path: Path) -> None:
        self.index.save_index(str(path))

    def __len__(self) -> int:
        return self.index.get_current_count()

    def query(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Labels and cosine similarities, each (n, k'), k' = min(k, size)."""
        k = min(k, len(self))
        if k == 0:
            empty = np.zeros((len(np.atleast_2d(vectors)), 0))
            return empty.astype(np.int64), empty.astype(np.float32)
        self.index.set_ef(max(self.params.ef_search, k))
        labels, distances = self.index.knn_query(np.atleast_2d(vectors), k=k)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)

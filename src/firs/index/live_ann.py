"""A view's ANN as the catalogue is now: the built graph, less the labels no product owns any
more, plus the vectors `firs add` appended since the build.

The built HNSW graph is never modified in place (a faiss graph is not safe to add to while
other threads search it, and rewriting a million-product file per added product would be
slow): removed labels are hidden from it by an ID selector, and added vectors are searched
exactly beside it, their scores merged with the graph's. Each snapshot is immutable; the
engine swaps in a new one when the store's generation moves. `firs compact` folds both into a
new graph.
"""

from __future__ import annotations

import numpy as np

from .ann import AnnIndex


class LiveAnn:
    def __init__(
        self,
        base: AnnIndex,
        hidden: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        vectors: np.ndarray | None = None,
    ) -> None:
        self.base = base
        hidden = np.zeros(0, np.int64) if hidden is None else np.unique(np.asarray(hidden, np.int64))
        self.hidden = hidden[hidden < len(base)]  # the graph's labels no product owns any more
        self.labels = np.zeros(0, np.int64) if labels is None else np.asarray(labels, np.int64)
        dim = base.index.d
        self.vectors = np.zeros((0, dim), np.float32) if vectors is None else np.asarray(vectors, np.float32)
        if self.vectors.shape != (len(self.labels), dim):
            raise ValueError(f"{len(self.labels)} added labels but vectors of shape {self.vectors.shape}")
        self._row = {int(label): row for row, label in enumerate(self.labels)}

    def __len__(self) -> int:
        return len(self.base) - len(self.hidden) + len(self.labels)

    def vector(self, label: int) -> np.ndarray:
        """The stored (search) vector of one label."""
        row = self._row.get(int(label))
        return self.vectors[row] if row is not None else self.base.stored.reconstruct(int(label))

    def query(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Labels and similarities, (n, k') best first, as AnnIndex.query — over what is visible now."""
        queries = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if not len(self.hidden) and not len(self.labels):
            return self.base.query(queries, k, allowed)
        if allowed is None:
            base = self.base.query_excluding(queries, k, self.hidden)
            added = self._exact(queries, k, np.ones(len(self.labels), bool))
        else:
            allowed = np.asarray(allowed, np.int64)
            inside = allowed[(allowed < len(self.base)) & ~np.isin(allowed, self.hidden)]
            base = self.base.query(queries, k, inside)
            added = self._exact(queries, k, np.isin(self.labels, allowed))
        return _merge(base, added, k)

    def _exact(self, queries: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, vectors = self.labels[mask], self.vectors[mask]
        k = min(k, len(labels))
        if k == 0:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        scores = queries @ vectors.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return labels[top], np.take_along_axis(scores, top, axis=1).astype(np.float32)


def _merge(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    labels = np.concatenate([first[0], second[0]], axis=1)
    scores = np.concatenate([first[1], second[1]], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    labels, scores = np.take_along_axis(labels, order, axis=1), np.take_along_axis(scores, order, axis=1)
    found = (labels >= 0).any(axis=0)  # slots no row filled (the graph ran out of others) go
    return labels[:, found], scores[:, found]

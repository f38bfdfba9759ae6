"""The approximate nearest-neighbour index: a faiss HNSW graph on L2-normalised vectors.

faiss was chosen over hnswlib and usearch by bench/ann_compare.py (100k x 1024-d, M=32,
efConstruction=200, one query thread): at recall@10 ~0.99 faiss answered in 3.1 ms,
hnswlib in 4.9 ms, usearch in 9.2 ms, and faiss built fastest (154 s vs 187 s and 255 s on
2 cores). It also filters natively inside the graph search (IDSelector), which the tag mode
and metadata filters need. Inner product on unit vectors = cosine similarity.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import faiss
import numpy as np

from ..errors import IndexFormatError

# A filtered search scores an allowed set of at most this many vectors directly; a larger
# one is searched in the graph (bench/filtered_latency.py: on 9594 products, 959 allowed
# took 1.4 ms exactly, 1918 took 9.9 ms exactly (reading the vectors back dominates) and
# 2.8 ms in the graph at recall 0.999).
EXACT_BELOW = 1000


# The vectors in the graph: float32; 8 bits a dimension (faiss SQ8); or 8 bits for the graph walk
# and float32 kept beside them, which score the walk's REFINE_FACTOR x k best again exactly
# ("sq8-exact": the walk at SQ8's speed, the scores and order of float32).
STORAGES = ("flat", "sq8", "sq8-exact")
COMPRESSIONS = ("auto", "none", "sq8", "sq8-exact")  # `--compress` of build and reindex
REFINE_FACTOR = 2
# From this many products `auto` stores 8-bit vectors only (bench/ann_million.py: a quarter of
# float32's memory, faster, the same recall@10 at 100k; a million products' two views in 1.2 GB, p50
# ~1 ms at recall@10 .973; below this size float32 and 1024 dims fit in ~2 GB; docs/architecture.md).
LARGE_CATALOGUE = 200_000
# Below this many, `auto` keeps float32 beside 8-bit vectors (sq8-exact): 1.25x float32's memory, ~1.9 GB
# at 160k products with 1024 dims in both views; from it to LARGE_CATALOGUE, float32 alone.
EXACT_CATALOGUE = 160_000

# efSearch is chosen per view by the build: the least of these whose recall@10 reaches the target
# on probe queries (`probe_queries`). bench/ef_search.py, dev index (9594 products), against 300 street
# photos: catalogue vectors as probes chose 16 for both views where the photos need 192 (whole photo)
# and 64 (garment) — at 16 the photos' recall@10 was .49 and .85; probes pushed off by noise twice
# their length choose 192 and 96.
EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
TARGET_RECALL = 0.97
TUNING_SAMPLE, TUNING_K = 500, 10
PROBE_NOISE = 2.0
_EXACT_BLOCK = 16_384  # vectors scored at a time when finding the exact answers
# A search of at most this many queries runs on the calling thread alone. faiss shares queries
# among OpenMP threads; with one query the others only wake, find nothing to do and spin, and the
# spin took a core from the networks of the next search (bench/mode_latency.py, fine: the pose
# detector 5.4 -> 3.3 ms, the whole search 24.6 -> 22.3 ms).
_FEW_QUERIES = 4


@contextlib.contextmanager
def _threads_for(queries: int) -> Iterator[None]:
    """faiss's OpenMP threads for a search of `queries` (the setting is the calling thread's own)."""
    if queries > _FEW_QUERIES:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def storage_for(compress: str, products: int) -> str:
    """The ANN storage `--compress` asks for in a catalogue of `products`."""
    if compress == "auto":
        return "sq8" if products >= LARGE_CATALOGUE else "sq8-exact" if products < EXACT_CATALOGUE else "flat"
    return {"none": "flat", "sq8": "sq8", "sq8-exact": "sq8-exact"}[compress]


@dataclass(frozen=True)
class HnswParams:
    m: int = 32
    ef_construction: int = 200
    ef_search: int = 256
    storage: str = "flat"

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


class AnnIndex:
    def __init__(self, index: faiss.Index, params: HnswParams) -> None:
        self.index = index
        self.params = params
        # sq8-exact (as the index itself is, whatever the manifest says): its answers are scored
        # again, and its stored vectors read back from the float32 ones, not the 8-bit codes.
        self.refined = isinstance(index, faiss.IndexRefine)
        self.stored = faiss.downcast_index(index.refine_index) if self.refined else index

    @classmethod
    def empty(cls, dim: int, params: HnswParams | None = None) -> AnnIndex:
        """An index to `add` to (float32 storage; 8-bit storage needs its range: `from_blocks`)."""
        params = params or HnswParams()
        if params.storage in ("sq8", "sq8-exact"):
            graph = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, params.m, faiss.METRIC_INNER_PRODUCT)
        elif params.storage == "flat":
            graph = faiss.IndexHNSWFlat(dim, params.m, faiss.METRIC_INNER_PRODUCT)
        else:
            raise ValueError(f"unknown ANN storage {params.storage!r} ({', '.join(STORAGES)})")
        graph.hnsw.efConstruction = params.ef_construction
        if params.storage != "sq8-exact":
            return cls(graph, params)
        index = faiss.IndexRefineFlat(graph)
        graph.this.disown()  # the refining index owns its graph from now on
        index.own_fields = True
        return cls(index, params)

    @classmethod
    def from_blocks(cls, blocks: Callable[[], Iterable[np.ndarray]], params: HnswParams | None = None) -> AnnIndex:
        """The graph over every vector the blocks hold, in order (labels 0..n-1), with one block in
        memory at a time; `blocks` is called once more for 8-bit storage, whose codes first take
        the least and greatest value of every dimension."""
        first = next(iter(blocks()), None)
        if first is None:
            raise ValueError("no vectors to index")
        ann = cls.empty(first.shape[1], params)
        if not ann.index.is_trained:
            low, high = first.min(axis=0), first.max(axis=0)
            for block in blocks():
                low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
            ann.index.train(np.ascontiguousarray(np.stack([low, high]), dtype=np.float32))
        for block in blocks():
            ann.add(block)
        return ann

    @classmethod
    def build(cls, vectors: np.ndarray, params: HnswParams | None = None) -> AnnIndex:
        """Labels are row numbers 0..n-1 of `vectors`."""
        return cls.from_blocks(lambda: [vectors], params)

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors; their labels continue from the current size."""
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    @classmethod
    def load(cls, path: Path, dim: int, count: int, params: HnswParams) -> AnnIndex:
        try:
            index = faiss.read_index(str(path))
        except (RuntimeError, OSError) as exc:
            message = str(exc).strip().splitlines()[-1] if str(exc).strip() else exc.__class__.__name__
            raise IndexFormatError(f"{path}: ANN index unreadable ({message})") from None
        if index.d != dim or index.ntotal != count:
            raise IndexFormatError(
                f"{path}: ANN index holds {index.ntotal} vectors of {index.d} dims, manifest says {count} of {dim}"
            )
        return cls(index, params)

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def query(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Labels and cosine similarities, each (n, k'), best first; k' = min(k, size of the
        allowed set). `allowed` restricts the answer to those labels (a filtered search)."""
        queries = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if allowed is not None:
            return self._query_allowed(queries, k, np.asarray(allowed, dtype=np.int64))
        k = min(k, len(self))
        if k == 0:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        scores, labels = self._walk(queries, k)
        return labels.astype(np.int64), scores.astype(np.float32)

    def query_excluding(self, queries: np.ndarray, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As `query`, never answering the `excluded` labels (sorted int64; kept alive by the caller)."""
        if not len(excluded):
            return self.query(queries, k)
        k = min(k, len(self) - len(excluded))
        if k <= 0:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        batch = faiss.IDSelectorBatch(len(excluded), faiss.swig_ptr(excluded))
        selector = faiss.IDSelectorNot(batch)
        scores, labels = self._walk(queries, k, selector)
        scores[labels < 0] = -np.inf  # the walk found fewer than k others: those slots sort last
        return labels.astype(np.int64), scores.astype(np.float32)

    def _query_allowed(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(allowed))
        if k == 0:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        if len(allowed) <= EXACT_BELOW:
            return self._exact(queries, k, allowed)
        selector = faiss.IDSelectorBatch(len(allowed), faiss.swig_ptr(allowed))
        scores, labels = self._walk(queries, k, selector)
        if (labels < 0).any():  # the graph walk ran out of allowed neighbours: answer exactly
            return self._exact(queries, k, allowed)
        return labels.astype(np.int64), scores.astype(np.float32)

    def _walk(
        self, queries: np.ndarray, k: int, selector: faiss.IDSelector | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """faiss's graph search (scores, labels), on the calling thread alone for a few queries."""
        with _threads_for(len(queries)):
            return self.index.search(queries, k, params=self._search(k, selector))

    def _search(self, k: int, selector: faiss.IDSelector | None = None) -> faiss.SearchParameters:
        """The graph walk's parameters: efSearch, and the labels it may answer (`selector`)."""
        walk = faiss.SearchParametersHNSW(efSearch=max(self.params.ef_search, k))
        if selector is not None:
            walk.sel = selector
        if not self.refined:
            return walk
        refine = faiss.IndexRefineSearchParameters(k_factor=REFINE_FACTOR, base_index_params=walk)
        refine.walk = walk  # the SWIG object holds a bare pointer: keep the walk's parameters alive
        return refine

    def with_ef_search(self, ef_search: int) -> AnnIndex:
        """The same graph searched with another efSearch."""
        return AnnIndex(self.index, replace(self.params, ef_search=ef_search))

    def tune_ef_search(self, k: int = TUNING_K) -> tuple[int, float]:
        """The least efSearch on EF_LADDER whose recall@k reaches TARGET_RECALL on probe queries
        (`probe_queries`), against exact search over the stored vectors (for 8-bit storage, the
        decoded ones); and that recall."""
        if len(self) <= k:
            return self.params.ef_search, 1.0
        queries = probe_queries(self, TUNING_SAMPLE)
        truth = self.exact_top(queries, k)
        recall = 0.0
        for ef in EF_LADDER:
            recall = recall_at(self.with_ef_search(ef).query(queries, k)[0], truth, k)
            if recall >= TARGET_RECALL:
                return ef, recall
        return EF_LADDER[-1], recall

    def exact_top(self, queries: np.ndarray, k: int) -> np.ndarray:
        """The labels of each query's k most similar stored vectors, by brute force, a block at a time."""
        best = np.full((len(queries), k), -np.inf, np.float32)
        best_labels = np.zeros((len(queries), k), np.int64)
        for start in range(0, len(self), _EXACT_BLOCK):
            scores = queries @ self.stored.reconstruct_n(start, min(_EXACT_BLOCK, len(self) - start)).T
            top = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
            merged = np.concatenate([best, np.take_along_axis(scores, top, axis=1)], axis=1)
            merged_labels = np.concatenate([best_labels, top + start], axis=1)
            keep = np.argsort(-merged, axis=1, kind="stable")[:, :k]
            best = np.take_along_axis(merged, keep, axis=1)
            best_labels = np.take_along_axis(merged_labels, keep, axis=1)
        return best_labels

    def _exact(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over the allowed vectors only (small sets, where a graph walk wastes its visits)."""
        vectors = self.stored.reconstruct_batch(allowed)
        scores = queries @ vectors.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return allowed[top], np.take_along_axis(scores, top, axis=1).astype(np.float32)


def recall_at(found: Sequence[np.ndarray], truth: Sequence[np.ndarray], k: int) -> float:
    """Recall@k: the share of each query's exact k (`truth`) among its first k answers (`found`)."""
    hits = sum(len(set(a[:k].tolist()) & set(b[:k].tolist())) for a, b in zip(found, truth, strict=True))
    return hits / (k * len(truth))


def probe_queries(ann: AnnIndex, size: int, seed: int = 0) -> np.ndarray:
    """Up to `size` stored vectors drawn at random (seeded), each pushed off the catalogue by a
    random direction of PROBE_NOISE times its length, L2-normalised. A photo's vector lies far
    from every product's (a street photo's garment ~0.4 cosine to its nearest, its whole photo
    ~0.14), and a graph walk from there needs a larger efSearch than from a catalogue vector."""
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.choice(len(ann), size=min(size, len(ann)), replace=False)).astype(np.int64)
    vectors = ann.stored.reconstruct_batch(labels)
    noise = rng.standard_normal(vectors.shape)
    probes = _unit(vectors) + PROBE_NOISE * _unit(noise)
    return _unit(probes).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

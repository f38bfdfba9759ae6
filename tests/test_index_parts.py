from pathlib import Path

import faiss
import numpy as np

from firs.index import ann
from firs.index.ann import EF_LADDER, TARGET_RECALL, AnnIndex, HnswParams
from firs.index.shards import iter_rows, read_column, write_shard
from firs.index.whitening import Whitening, fit_whitening


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_whitening_decorrelates_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((32, 32)) * np.linspace(5, 0.1, 32)
    features = rng.standard_normal((4000, 32)) @ mixing
    w = fit_whitening(features, dim=16, shrink=0.0)
    raw = (features - w.mean) @ w.projection
    covariance = np.cov(raw.T)
    assert np.allclose(covariance, np.eye(16), atol=0.05)
    out = w.apply(features)
    assert out.shape == (4000, 16) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    w.save(tmp_path / "w.npz")
    again = Whitening.load(tmp_path / "w.npz")
    assert np.allclose(again.apply(features[:5]), out[:5], atol=1e-5) and again.shrink == 0.0


def test_small_catalogue_gets_strong_shrinkage_and_no_null_space() -> None:
    features = np.random.default_rng(1).standard_normal((10, 64))
    w = fit_whitening(features, dim=1024)
    assert w.dim == 9  # rank n-1: directions without catalogue variance are dropped
    assert w.shrink == 6.4  # d/n
    assert fit_whitening(np.random.default_rng(2).standard_normal((1000, 8)), dim=4).shrink == 0.1


def test_ann_finds_exact_neighbours_and_saves(tmp_path: Path) -> None:
    vectors = _unit(np.random.default_rng(3).standard_normal((500, 24)))
    index = AnnIndex.build(vectors)
    labels, scores = index.query(vectors[:10], k=3)
    assert labels[:, 0].tolist() == list(range(10))
    assert np.allclose(scores[:, 0], 1.0, atol=1e-4) and np.all(np.diff(scores, axis=1) <= 1e-6)
    index.save(tmp_path / "a.hnsw")
    loaded = AnnIndex.load(tmp_path / "a.hnsw", 24, 500, index.params)
    assert loaded.query(vectors[7], k=1)[0][0, 0] == 7
    assert index.query(vectors[0], k=1000)[0].shape == (1, 500)


def test_ef_search_is_the_least_that_reaches_the_recall_target() -> None:
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((40, 48))
    vectors = _unit(centres[rng.integers(0, 40, 6000)] + 0.6 * rng.standard_normal((6000, 48)))
    index = AnnIndex.build(vectors, HnswParams(m=8, ef_construction=40))
    ef, recall = index.tune_ef_search()
    assert ef in EF_LADDER and recall >= TARGET_RECALL
    # Fresh queries (not catalogue vectors) reach about the same recall with it.
    queries = _unit(centres[rng.integers(0, 40, 300)] + 0.6 * rng.standard_normal((300, 48)))
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]

    def recall_at(ef_search: int) -> float:
        found = index.with_ef_search(ef_search).query(queries, 10)[0]
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), exact.tolist(), strict=True)]))

    assert recall_at(ef) >= TARGET_RECALL - 0.02
    assert index.tune_ef_search() == (ef, recall)  # the sample is seeded: a rebuild tunes the same
    assert ef > EF_LADDER[0] and recall_at(EF_LADDER[0]) < TARGET_RECALL  # this graph needs more than the least


def test_feature_shards_round_trip(tmp_path: Path) -> None:
    features = np.random.default_rng(4).standard_normal((7, 5)).astype(np.float32)
    ids = [f"p{i}" for i in range(7)]
    colours = np.random.default_rng(5).random((7, 3)).astype(np.float32)
    labels = [[{"label": "type:dress", "source": "classifier", "confidence": 0.5}]] * 4 + [[]] * 3
    write_shard(tmp_path / "f" / "part-00001.parquet", ids[4:], ["worn"] * 3, labels[4:], {"fine": features[4:]})
    write_shard(tmp_path / "f" / "part-00000.parquet", ids[:4], ["shot"] * 4, labels[:4], {"fine": features[:4]})
    got_ids, got = read_column(tmp_path / "f", "fine")  # in partition order, whatever the writing order
    assert got_ids == ids and np.array_equal(got, features)
    rows = list(iter_rows(tmp_path / "f"))
    assert [row[1] for row in rows] == ["shot"] * 4 + ["worn"] * 3 and rows[0][2] == labels[0]
    assert not list((tmp_path / "f").glob(".*"))  # no temporary file left behind
    both = {"fine": features, "fine_colour": colours}
    write_shard(tmp_path / "g" / "part-00000.parquet", ids, ["shot"] * 7, [[]] * 7, both)
    assert np.array_equal(read_column(tmp_path / "g", "fine_colour")[1], colours)


def test_a_few_queries_search_on_the_calling_thread_alone() -> None:
    # faiss shares queries among OpenMP threads; for one query the others only wake and spin,
    # taking a core from the networks of the next search.
    before = faiss.omp_get_max_threads()
    seen = []
    with ann._threads_for(1):
        seen.append(faiss.omp_get_max_threads())
    with ann._threads_for(500):
        seen.append(faiss.omp_get_max_threads())
    assert seen == [1, before] and faiss.omp_get_max_threads() == before

"""Feature shards: raw (pre-whitening) vectors in Parquet, from which any index rebuilds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SHARD_ROWS = 50_000


def write_shards(folder: Path, ids: Sequence[str], features: np.ndarray) -> list[str]:
    """Write `features` (n, d) float32 with their ids; returns the shard file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    dim = features.shape[1] if features.ndim == 2 else 0
    for number, start in enumerate(range(0, max(1, len(ids)), SHARD_ROWS)):
        block = np.ascontiguousarray(features[start : start + SHARD_ROWS], dtype=np.float32)
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), dim)
        table = pa.table({"id": pa.array(list(ids[start : start + SHARD_ROWS]), pa.string()), "feature": vectors})
        name = f"part-{number:05d}.parquet"
        pq.write_table(table, folder / name)
        names.append(name)
    return names


def read_shards(folder: Path) -> tuple[list[str], np.ndarray]:
    """All ids and features, in shard order."""
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    for path in sorted(folder.glob("part-*.parquet")):
        table = pq.read_table(path)
        ids.extend(table.column("id").to_pylist())
        column = table.column("feature").combine_chunks()
        dim = column.type.list_size
        blocks.append(column.flatten().to_numpy().reshape(-1, dim))
    features = np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32)
    return ids, features

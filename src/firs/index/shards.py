"""Feature shards: raw (pre-whitening) vectors in Parquet, from which any index rebuilds.

Each row holds a product id, its backbone feature and, in views that have them, other
per-product vectors (the `colour` signature)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SHARD_ROWS = 50_000
FEATURE = "feature"
COLOUR = "colour"


def _vectors(block: np.ndarray) -> pa.FixedSizeListArray:
    block = np.ascontiguousarray(block, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), block.shape[1] if block.ndim == 2 else 0)


def write_shards(
    folder: Path, ids: Sequence[str], features: np.ndarray, extra: Mapping[str, np.ndarray] | None = None
) -> list[str]:
    """Write `features` (n, d) float32 with their ids, and `extra` columns of n rows each;
    returns the shard file names."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = {FEATURE: features, **(extra or {})}
    names: list[str] = []
    for number, start in enumerate(range(0, max(1, len(ids)), SHARD_ROWS)):
        rows = slice(start, start + SHARD_ROWS)
        table = pa.table(
            {
                "id": pa.array(list(ids[rows]), pa.string()),
                **{name: _vectors(values[rows]) for name, values in columns.items()},
            }
        )
        name = f"part-{number:05d}.parquet"
        pq.write_table(table, folder / name)
        names.append(name)
    return names


def read_shards(folder: Path, column: str = FEATURE) -> tuple[list[str], np.ndarray]:
    """All ids and one vector column, in shard order."""
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    for path in sorted(folder.glob("part-*.parquet")):
        table = pq.read_table(path, columns=["id", column])
        ids.extend(table.column("id").to_pylist())
        values = table.column(column).combine_chunks()
        blocks.append(values.flatten().to_numpy().reshape(-1, values.type.list_size))
    return ids, np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32)

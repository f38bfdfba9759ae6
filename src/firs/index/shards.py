"""Embedding shards: what the embed stage hands the index stage, kept in the index.

One Parquet file per catalogue partition (`part-NNNNN.parquet`), one row per embedded
product: its id, how its image was seen (`note`), the labels read off its picture (JSON),
and per view the raw backbone feature (column named after the view) and, where the view
has one, the garment's colour signature (`<view>_colour`). Any index — a new whitening, a
learned head, another ANN — rebuilds from these without re-embedding (`firs reindex`).

Picture shards (`pictures-NNNNN.parquet`: id, jpeg) carry the pictures the index serves from
the embed stage to the index stage; they are consumed there, not kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ID = "id"
NOTE = "note"
LABELS = "labels"
JPEG = "jpeg"


def colour_column(view: str) -> str:
    return f"{view}_colour"


def shard_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


def pictures_name(number: int) -> str:
    return f"pictures-{number:05d}.parquet"


def _vectors(block: np.ndarray) -> pa.FixedSizeListArray:
    block = np.ascontiguousarray(block, dtype=np.float32)
    width = block.shape[1] if block.ndim == 2 else 0
    return pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), width)


def _write_atomic(table: pa.Table, path: Path) -> None:
    """A shard appears whole or not at all (a re-run or a speculative Spark task writes it again)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_shard(
    path: Path,
    ids: Sequence[str],
    notes: Sequence[str],
    labels: Sequence[list[dict[str, object]]],
    vectors: Mapping[str, np.ndarray],
) -> None:
    """One partition's rows; `vectors`: column name -> (n, d) float32."""
    table = pa.table(
        {
            ID: pa.array(list(ids), pa.string()),
            NOTE: pa.array(list(notes), pa.string()),
            LABELS: pa.array([json.dumps(row) for row in labels], pa.string()),
            **{name: _vectors(values) for name, values in vectors.items()},
        }
    )
    _write_atomic(table, path)


def write_pictures(path: Path, ids: Sequence[str], jpegs: Sequence[bytes]) -> None:
    _write_atomic(pa.table({ID: pa.array(list(ids), pa.string()), JPEG: pa.array(list(jpegs), pa.binary())}), path)


def read_pictures(path: Path) -> Iterator[tuple[str, bytes]]:
    table = pq.read_table(path)
    yield from zip(table.column(ID).to_pylist(), table.column(JPEG).to_pylist(), strict=True)


def shard_paths(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("part-*.parquet"))


def columns(folder: Path) -> list[str]:
    """The columns the shards hold (those of the first; every shard has the same)."""
    paths = shard_paths(folder)
    return list(pq.read_schema(paths[0]).names) if paths else []


def _block(table: pa.Table, column: str) -> np.ndarray:
    values = table.column(column).combine_chunks()
    width = values.type.list_size
    return values.flatten().to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32, copy=False)


def iter_column(folder: Path, column: str) -> Iterator[tuple[list[str], np.ndarray]]:
    """(ids, (n, d) vectors) shard by shard, in shard order: memory bounded by one shard."""
    for path in shard_paths(folder):
        table = pq.read_table(path, columns=[ID, column])
        yield table.column(ID).to_pylist(), _block(table, column)


def read_column(folder: Path, column: str) -> tuple[list[str], np.ndarray]:
    """All ids and one vector column, in shard order."""
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    for part_ids, block in iter_column(folder, column):
        ids.extend(part_ids)
        blocks.append(block)
    return ids, np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32)


def row_count(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def filtered_copy(source: Path, target: Path, keep: np.ndarray) -> list[str]:
    """The rows of one shard where `keep` is true, written whole to `target`; their ids."""
    table = pq.read_table(source).filter(pa.array(np.asarray(keep, bool)))
    _write_atomic(table, target)
    return table.column(ID).to_pylist()


def read_ids(folder: Path) -> list[str]:
    """Every row's product id, in shard order."""
    return [i for path in shard_paths(folder) for i in pq.read_table(path, columns=[ID]).column(ID).to_pylist()]


def iter_rows(folder: Path) -> Iterator[tuple[str, str, list[dict[str, object]]]]:
    """(id, note, labels) of every row, in shard order."""
    for path in shard_paths(folder):
        table = pq.read_table(path, columns=[ID, NOTE, LABELS])
        for product_id, note, labels in zip(
            table.column(ID).to_pylist(), table.column(NOTE).to_pylist(), table.column(LABELS).to_pylist(), strict=True
        ):
            yield product_id, note, json.loads(labels)

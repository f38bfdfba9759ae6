"""Decode and embed images in batches, decoding ahead on threads while the network runs."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from ..errors import ImageError
from ..vision.decode import load_image
from ..vision.embedder import FEATURE_DIM, Embedder


@dataclass
class EmbedResult:
    ids: list[str] = field(default_factory=list)
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, FEATURE_DIM), np.float32))
    failures: dict[str, str] = field(default_factory=dict)  # id -> reason


def _prefetch(
    items: Sequence[tuple[str, str]], load: Callable[[str], np.ndarray], workers: int, window: int
) -> Iterator[tuple[str, np.ndarray | None, str | None]]:
    """(id, prepared array or None, error) in input order, at most `window` in flight."""

    def task(path: str) -> tuple[np.ndarray | None, str | None]:
        try:
            return load(path), None
        except ImageError as exc:
            return None, str(exc)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[str, Future[tuple[np.ndarray | None, str | None]]]] = deque()
        for product_id, path in items:
            pending.append((product_id, pool.submit(task, path)))
            if len(pending) >= window:
                first_id, future = pending.popleft()
                yield (first_id, *future.result())
        while pending:
            first_id, future = pending.popleft()
            yield (first_id, *future.result())


def embed_images(
    items: Sequence[tuple[str, str]],
    embedder: Embedder,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = True,
) -> EmbedResult:
    """Embed (id, image path) pairs; images that fail to decode are reported, not fatal."""
    result = EmbedResult()
    blocks: list[np.ndarray] = []
    batch_ids: list[str] = []
    batch: list[np.ndarray] = []
    bar = tqdm(total=len(items), desc="embed images", unit="img", disable=not progress)

    def flush() -> None:
        if batch:
            blocks.append(embedder.embed_arrays(np.stack(batch)))
            result.ids.extend(batch_ids)
            bar.update(len(batch))
            batch.clear()
            batch_ids.clear()

    def load(path: str) -> np.ndarray:
        return embedder.prepare(load_image(path))

    for product_id, array, error in _prefetch(items, load, workers, window=2 * batch_size):
        if array is None:
            result.failures[product_id] = error or "unknown error"
            bar.update(1)
            continue
        batch.append(array)
        batch_ids.append(product_id)
        if len(batch) == batch_size:
            flush()
    flush()
    bar.close()
    if blocks:
        result.features = np.concatenate(blocks)
    return result

"""Decode and embed images in batches, preparing ahead on threads while the network runs.

A loader turns one product image into one prepared array per view (see pipeline/views.py)
and the labels it can read off the picture; every view is embedded with the same network,
batch by batch, and the classifier head of one view gives each product its type labels.
Views named in `signature_views` also get the garment signature (colour, texture; of
`signature_kind`) of their prepared pictures.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from ..errors import ImageError
from ..tagging.tagger import Tag, classifier_tags
from ..vision import colour_signature
from ..vision.backbone_tail import Tail
from ..vision.embedder import Embedder


@dataclass
class Prepared:
    arrays: dict[str, np.ndarray]  # view -> prepared CHW array
    note: str  # how the views were made
    tags: list[Tag] = field(default_factory=list)  # labels read off the picture (colour, region)
    picture: bytes = b""  # the picture the index keeps and serves (JPEG, see index/images.py)


# (product id, image path) -> the prepared views
Loader = Callable[[str, str], Prepared]
_Outcome = Prepared | str  # or the reason it failed


@dataclass
class EmbedResult:
    ids: list[str] = field(default_factory=list)
    features: dict[str, np.ndarray] = field(default_factory=dict)  # view -> (n, 1280)
    signatures: dict[str, np.ndarray] = field(default_factory=dict)  # view -> (n, size) garment signatures
    failures: dict[str, str] = field(default_factory=dict)  # product id -> reason
    note_of: dict[str, str] = field(default_factory=dict)  # product id -> how its views were made
    tags: dict[str, list[Tag]] = field(default_factory=dict)  # product id -> image labels

    @property
    def notes(self) -> Counter[str]:
        """How many images were seen each way."""
        return Counter(self.note_of.values())


def _prefetch(
    items: Sequence[tuple[str, str]], load: Loader, workers: int, window: int
) -> Iterator[tuple[str, _Outcome]]:
    """(id, prepared views or the error) in input order, at most `window` in flight."""

    def task(product_id: str, path: str) -> _Outcome:
        try:
            return load(product_id, path)
        except ImageError as exc:
            return str(exc)
        except Exception as exc:  # one odd image must not abort a build: it fails, with the reason
            return f"{path}: cannot process ({exc.__class__.__name__}: {exc})"

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        pending: deque[tuple[str, Future[_Outcome]]] = deque()
        for product_id, path in items:
            pending.append((product_id, pool.submit(task, product_id, path)))
            if len(pending) >= window:
                first_id, future = pending.popleft()
                yield first_id, future.result()
        while pending:
            first_id, future = pending.popleft()
            yield first_id, future.result()
    finally:  # on Ctrl-C or SIGTERM too: queued images are dropped, not waited for
        pool.shutdown(wait=False, cancel_futures=True)


def embed_images(
    items: Sequence[tuple[str, str]],
    embedder: Embedder,
    load: Loader,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = True,
    classify_view: str | None = None,
    keep: Callable[[str, Prepared], None] | None = None,
    desc: str = "embed images",
    signature_views: tuple[str, ...] = (),
    signature_kind: str = colour_signature.DEFAULT_KIND,
    tails: dict[str, Tail] | None = None,
    bar: tqdm | None = None,
) -> EmbedResult:
    """Embed (id, image path) pairs; images that fail to decode are reported, not fatal.
    `classify_view`: the view whose ImageNet probabilities become each product's type labels;
    `keep` is given every prepared image as it comes (the build stores its picture); `tails`:
    views embedded through a tuned backbone tail (a `firs train` model); `bar`: a progress bar
    to advance instead of one of its own."""
    result = EmbedResult()
    blocks: dict[str, list[np.ndarray]] = {}
    signature_blocks: dict[str, list[np.ndarray]] = {}
    batch_ids: list[str] = []
    batch: dict[str, list[np.ndarray]] = {}
    own_bar = bar is None
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress) if bar is None else bar

    def flush() -> None:
        if batch_ids:
            for view, arrays in batch.items():
                stacked = np.stack(arrays)
                tail = (tails or {}).get(view)
                features, probabilities = embedder.forward(stacked, tail) if tail else embedder.forward(stacked)
                blocks.setdefault(view, []).append(features)
                if view in signature_views:
                    signature_blocks.setdefault(view, []).append(colour_signature.signatures(stacked, signature_kind))
                if view == classify_view:
                    for product_id, row in zip(batch_ids, probabilities, strict=True):
                        result.tags[product_id] = classifier_tags(row) + result.tags.get(product_id, [])
            result.ids.extend(batch_ids)
            bar.update(len(batch_ids))
            batch_ids.clear()
            batch.clear()

    for product_id, prepared in _prefetch(items, load, workers, window=2 * batch_size):
        if isinstance(prepared, str):
            result.failures[product_id] = prepared or "unknown error"
            bar.update(1)
            continue
        if keep is not None:
            keep(product_id, prepared)
        result.note_of[product_id] = prepared.note
        result.tags[product_id] = prepared.tags
        for view, array in prepared.arrays.items():
            batch.setdefault(view, []).append(array)
        batch_ids.append(product_id)
        if len(batch_ids) == batch_size:
            flush()
    flush()
    if own_bar:
        bar.close()
    result.features = {view: np.concatenate(parts) for view, parts in blocks.items()}
    result.signatures = {view: np.concatenate(parts) for view, parts in signature_blocks.items()}
    return result

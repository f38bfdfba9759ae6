"""The inverted tag index: label -> sorted ANN labels of the products that carry it.

Stored as one .npz in the index directory (compressed sparse rows: label names, offsets,
items), written by the same build as the product store and checksummed in the manifest,
so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ..errors import IndexFormatError


class Postings:
    def __init__(self, lists: Mapping[str, np.ndarray]) -> None:
        self._lists = {label: np.asarray(items, dtype=np.int64) for label, items in lists.items()}

    @classmethod
    def build(cls, pairs: Iterable[tuple[str, int]]) -> Postings:
        """From (label, ANN label) pairs in any order."""
        grouped: dict[str, set[int]] = {}
        for label, item in pairs:
            grouped.setdefault(label, set()).add(int(item))
        return cls({label: np.array(sorted(items), np.int64) for label, items in sorted(grouped.items())})

    def save(self, path: Path) -> None:
        labels = sorted(self._lists)
        sizes = [len(self._lists[label]) for label in labels]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        items = np.concatenate([self._lists[label] for label in labels]) if labels else np.zeros(0, np.int64)
        with path.open("wb") as handle:
            np.savez(handle, labels=np.array(labels, dtype=str), offsets=offsets, items=items)

    @classmethod
    def load(cls, path: Path) -> Postings:
        try:
            with np.load(path) as data:
                labels, offsets, items = data["labels"], data["offsets"], data["items"]
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFormatError(f"{path}: tag postings unreadable ({exc})") from None
        if len(offsets) != len(labels) + 1 or offsets[-1] != len(items):
            raise IndexFormatError(f"{path}: tag postings are inconsistent (offsets do not match items)")
        return cls({str(label): items[offsets[i] : offsets[i + 1]] for i, label in enumerate(labels)})

    def __getitem__(self, label: str) -> np.ndarray:
        return self._lists.get(label, np.zeros(0, np.int64))

    def __contains__(self, label: str) -> bool:
        return label in self._lists

    def labels(self) -> list[str]:
        return list(self._lists)

    def counts(self) -> dict[str, int]:
        return {label: len(items) for label, items in self._lists.items()}

    def changed(self, hidden: np.ndarray, added: Iterable[tuple[str, int]]) -> Postings:
        """These postings less the `hidden` ANN labels, plus (label, ANN label) pairs added since."""
        extra: dict[str, list[int]] = {}
        for label, item in added:
            extra.setdefault(label, []).append(int(item))
        lists: dict[str, np.ndarray] = {}
        for label in {*self._lists, *extra}:
            items = self[label]
            if len(hidden):
                items = items[~np.isin(items, hidden)]
            if label in extra:
                items = np.union1d(items, np.array(extra[label], np.int64))
            if len(items):
                lists[label] = items
        return Postings(lists)

    def union(self, labels: Iterable[str]) -> np.ndarray:
        lists = [self[label] for label in labels]
        return np.unique(np.concatenate(lists)) if lists else np.zeros(0, np.int64)

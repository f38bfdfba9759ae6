"""Least-recently-used caches: answers to repeated photos, and product thumbnails.

Answers are keyed by the SHA-256 of the uploaded bytes plus the query's parameters; hits
and misses are counted for /api/stats.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


def cache_key(data: bytes, params: dict[str, Any]) -> str:
    digest = hashlib.sha256(data)
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class LruCache(Generic[K, V]):
    """A thread-safe LRU map of at most `size` entries, counting hits and misses."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: K, value: V) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"size": len(self._entries), "capacity": self.size, "hits": self.hits, "misses": self.misses}

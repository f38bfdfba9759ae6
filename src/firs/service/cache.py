"""The answer cache: an identical photo with identical parameters is answered from memory.

Keyed by the SHA-256 of the uploaded bytes plus the query's parameters, least recently
used entries evicted first; hits and misses are counted for /api/stats.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any


def cache_key(data: bytes, params: dict[str, Any]) -> str:
    digest = hashlib.sha256(data)
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class AnswerCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            answer = self._entries.get(key)
            if answer is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return answer

    def put(self, key: str, answer: dict[str, Any]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = answer
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"size": len(self._entries), "capacity": self.size, "hits": self.hits, "misses": self.misses}

"""A bounded worker pool: model inference off the event loop, with back-pressure.

At most `workers` searches run at once and at most `queue` more wait; a request beyond
that is refused at once (the API answers 503 with Retry-After) instead of joining an
unbounded queue whose wait would exceed any client's patience.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


# `on_idle` runs once the pool has had nothing to do for this long, in a thread of its own: run
# at once, in the event loop, it held every answer that emptied the pool ~1 ms (malloc_trim).
IDLE_DELAY_S = 1.0


class Busy(Exception):
    """Every worker is busy and the waiting line is full."""


class BoundedPool:
    def __init__(self, workers: int, queue: int, on_idle: Callable[[], object] | None = None) -> None:
        self.workers, self.capacity = workers, workers + queue
        self._on_idle = on_idle
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="firs-search")
        self._lock = threading.Lock()
        self.in_flight = 0
        self.refused = 0
        self._finished = 0  # searches done: an idle spell is over when it moves

    async def run(self, fn: Callable[[], T]) -> T:
        with self._lock:
            if self.in_flight >= self.capacity:
                self.refused += 1
                raise Busy
            self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        finally:
            with self._lock:
                self.in_flight -= 1
                self._finished += 1
                idle, finished = self.in_flight == 0, self._finished
            if idle and self._on_idle is not None:
                asyncio.get_running_loop().call_later(IDLE_DELAY_S, self._still_idle, finished)

    def _still_idle(self, finished: int) -> None:
        """Run `on_idle` (e.g. hand the memory of a burst back to the system) if nothing ran since."""
        with self._lock:
            if self.in_flight or self._finished != finished:
                return
        threading.Thread(target=self._on_idle, name="firs-idle", daemon=True).start()  # type: ignore[arg-type]

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

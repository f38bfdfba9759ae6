"""The running service follows its index: changes made in place, and new versions.

Every `interval` seconds a thread looks at the index path: if it now names another version
(`firs compact`, `reindex` or `build` swapped it), a new engine opens there — reusing the
loaded network and pose models — and replaces the old one once it is ready; otherwise the
engine takes in what `firs add`/`remove` changed (SearchEngine.refresh, one small query when
nothing did). Searches already running finish on the engine they started with; nothing waits
for the switch. Each `firs serve` process follows on its own, so replicas on one index all do.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..search.engine import SearchEngine

INTERVAL_S = 0.25  # how often the index is looked at: changes are served within ~this
log = logging.getLogger("firs.service")


class IndexFollower:
    def __init__(self, engine: SearchEngine, path: Path | None = None, interval: float = INTERVAL_S) -> None:
        self.engine = engine
        self.path = path  # the index path as given (a link to its current version); None: no new versions
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error = ""

    @property
    def version(self) -> str:
        """Names what the engine answers from: the index version and its changes in place."""
        engine = self.engine
        return f"{engine.index_dir.name}:{engine.generation}"

    def check(self) -> bool:
        """Follow the index now; True when the engine's answers may have changed."""
        with self._lock:
            engine = self.engine
            if self.path is not None and Path(self.path).resolve() != engine.index_dir:
                self.engine = SearchEngine(
                    self.path,
                    embedder=engine.embedder,
                    localiser=engine._localiser,
                    threads=engine.threads,
                    streams=engine.streams,
                )
                log.info("now serving %s (%d products)", self.engine.index_dir.name, len(self.engine))
                return True
            return engine.refresh()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="firs-follow", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
                self._last_error = ""
            except Exception as exc:  # a broken version: keep serving the one we have, say so once
                if str(exc) != self._last_error:
                    log.error("could not follow the index at %s (%s); still serving %s", self.path, exc, self.version)
                self._last_error = str(exc)

"""Demand sources for the external scaler: where request-rate history comes from.

`CsvDirectory` reads `<root>/<namespace>/<name>.csv` in any format `kopilot.traces.demand`
knows (re-read when the file changes). A Prometheus-backed source plugs in through the same
`DemandSource` protocol (`kopilot.scaling.keda.server`).
"""

from __future__ import annotations

import threading
from pathlib import Path

from kopilot.model import series
from kopilot.traces import demand


class CsvDirectory:
    def __init__(self, root: Path, *, history_s: float = 15 * 86400.0) -> None:
        self._root = root
        self._history_s = history_s
        self._cache: dict[Path, tuple[float, series.Series]] = {}
        self._lock = threading.Lock()

    def path_for(self, service: str) -> Path:
        namespace, _, name = service.partition("/")
        return self._root / namespace / f"{name}.csv"

    def demand(self, service: str, now: float) -> series.Series | None:
        """The service's history up to `now`, or None if there is no file for it.

        A malformed file raises `InvalidInputError` naming the file and line.
        """
        path = self.path_for(service)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return None
        with self._lock:
            cached = self._cache.get(path)
        if cached is None or cached[0] != mtime:
            loaded = demand.load_demand(path).demand
            with self._lock:
                self._cache[path] = (mtime, loaded)
        else:
            loaded = cached[1]
        recent = loaded.since(now - self._history_s)
        upto = int((recent.times <= now).sum())
        return series.Series(times=recent.times[:upto], values=recent.values[:upto])

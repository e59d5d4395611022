"""Demand sources for the external scaler: where request-rate history comes from.

`CsvDirectory` reads `<root>/<namespace>/<name>.csv` in any format `kopilot.traces.demand`
knows (re-read when the file changes). A Prometheus-backed source plugs in through the same
`DemandSource` protocol (`kopilot.scaling.keda.server`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from kopilot.model import errors, series
from kopilot.traces import demand

MAX_CACHED = 256
"""Series kept in memory (15 days of 1-minute samples is 0.35 MB each); the least recently read
is dropped first and read again from its file when asked for."""


class CsvDirectory:
    def __init__(
        self, root: Path, *, history_s: float = 15 * 86400.0, max_cached: int = MAX_CACHED
    ) -> None:
        self._root = root.resolve()
        self._history_s = history_s
        self._cache: OrderedDict[Path, tuple[float, series.Series]] = OrderedDict()
        self._max_cached = max_cached
        self._lock = threading.Lock()

    def path_for(self, service: str) -> Path:
        """`<root>/<namespace>/<name>.csv`, resolved (symbolic links followed); raises
        InvalidInputError when that is not inside the root: a service name that is a path
        (`a/../..`, `x//etc/passwd`) or a link out of the directory."""
        namespace, _, name = service.partition("/")
        if not namespace or not name or "/" in name or ".." in (namespace, name):
            raise errors.InvalidInputError(f"service {service!r} is not namespace/name")
        path = (self._root / namespace / f"{name}.csv").resolve()
        if not path.is_relative_to(self._root):
            raise errors.InvalidInputError(
                f"service {service!r}: its demand file resolves outside the demand directory"
            )
        return path

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
                while len(self._cache) > self._max_cached:
                    self._cache.popitem(last=False)
        else:
            loaded = cached[1]
            with self._lock:
                if path in self._cache:
                    self._cache.move_to_end(path)
        recent = loaded.since(now - self._history_s)
        upto = int((recent.times <= now).sum())
        return series.Series(times=recent.times[:upto], values=recent.values[:upto])

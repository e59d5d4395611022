"""Informer-style caches: list once, then watch, and keep a converted copy of every object.

Each `Informer` runs one background thread: a paginated LIST (raw JSON), then a WATCH from the
list's resourceVersion with bookmarks. Each object is converted once, when it changes
(`transform`), so a snapshot only copies what is already converted. A watch that ends is
resumed from the last resourceVersion seen; a 410 Gone (history compacted) or a broken stream
relists; transient failures back off and retry. A transform that fails records a problem for
that object (shown in the snapshot's problems) instead of stopping the cache.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from kubernetes.watch import watch as k8s_watch

from kopilot.kits import clocks
from kopilot.kube import apis, failures
from kopilot.model import errors

log = logging.getLogger(__name__)

T = TypeVar("T")

NODES = "/api/v1/nodes"
PODS = "/api/v1/pods"
DEPLOYMENTS = "/apis/apps/v1/deployments"
STATEFULSETS = "/apis/apps/v1/statefulsets"


class GoneError(failures.KubeError, errors.TemporaryError):
    """The watch's resourceVersion is too old (410): list again."""


def key_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = str(meta.get("name", ""))
    return f"{namespace}/{name}" if namespace else name


def wait_all_synced(
    informers: Iterable[Informer[Any]], timeout: float, clock: clocks.Clock
) -> bool:
    """Wait until every informer has listed once, all within `timeout` seconds in total."""
    deadline = clock.now() + timeout
    return all(i.wait_synced(max(0.0, deadline - clock.now())) for i in informers)


class Informer(Generic[T]):
    """A list+watch cache of one resource kind, converted by `transform`."""

    def __init__(
        self,
        *,
        kind: str,
        path: str,
        transform: Callable[[dict[str, Any]], T],
        api: apis.Api,
        clock: clocks.Clock,
        page_size: int = 500,
        watch_timeout_s: int = 300,
        from_cache: bool = True,
    ) -> None:
        self.kind = kind
        self._path = path
        self._transform = transform
        self._api = api
        self._clock = clock
        self._page_size = page_size
        self._watch_timeout_s = watch_timeout_s
        self._from_cache = from_cache
        self._lock = threading.Lock()
        self._items: dict[str, T] = {}
        self._problems: dict[str, str] = {}
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None
        self.resource_version = ""
        self.last_error: str | None = None
        self.relists = 0

    # -- reading ----------------------------------------------------------------------------
    def items(self) -> dict[str, T]:
        """A copy of the converted objects, by `namespace/name` (or name, cluster-scoped)."""
        with self._lock:
            return dict(self._items)

    def problems(self) -> dict[str, str]:
        with self._lock:
            return dict(self._problems)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    # -- running ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown()
            except AttributeError:
                response.close()
            except Exception:
                log.debug("closing the %s watch failed", self.kind, exc_info=True)
        if self._thread is not None:
            self._thread.join(timeout)

    def relist(self) -> None:
        """One paginated LIST that replaces the whole cache (also used directly by benchmarks)."""
        items: dict[str, T] = {}
        problems: dict[str, str] = {}
        token: str | None = None
        version = ""
        while True:
            query: dict[str, str | int | bool] = {"limit": self._page_size}
            if token:
                query["continue"] = token
            elif self._from_cache:
                # Like client-go's reflector: "any version" lets the API server answer from its
                # watch cache instead of a consistent read of every page from etcd.
                query["resourceVersion"] = "0"
            body = self._api.call("GET", self._path, f"list {self.kind}", query=query)
            for obj in body.get("items") or []:
                obj.setdefault("kind", self.kind)
                self._convert_into(obj, items, problems)
            meta = body.get("metadata") or {}
            version = str(meta.get("resourceVersion", ""))
            token = meta.get("continue") or None
            if not token:
                break
        with self._lock:
            self._items = items
            self._problems = problems
        self.resource_version = version
        self.relists += 1
        self._synced.set()

    def _run(self) -> None:
        failures_in_a_row = 0
        need_list = True
        while not self._stopping.is_set():
            try:
                if need_list:
                    self.relist()
                    need_list = False
                self._watch()
                failures_in_a_row = 0
            except GoneError:
                need_list = True
            except Exception as exc:
                if self._stopping.is_set():
                    return
                try:
                    err = failures.classify(exc, f"watch {self.kind}")
                except TypeError:
                    err = failures.UnavailableError(f"watch {self.kind}: {exc!r}")
                self.last_error = str(err)
                log.warning("%s cache: %s; retrying", self.kind, err)
                failures_in_a_row += 1
                need_list = True
                self._clock.sleep(min(30.0, 0.5 * 2 ** min(failures_in_a_row, 6)))

    def _watch(self) -> None:
        response = self._api.raw(
            "GET",
            self._path,
            f"watch {self.kind}",
            query={
                "watch": True,
                "resourceVersion": self.resource_version,
                "allowWatchBookmarks": True,
                "timeoutSeconds": self._watch_timeout_s,
            },
            timeout=(10.0, float(self._watch_timeout_s + 30)),
        )
        self._response = response
        try:
            for line in k8s_watch.iter_resp_lines(response):  # type: ignore[no-untyped-call]
                if self._stopping.is_set():
                    return
                if line:
                    self._handle(json.loads(line))
        finally:
            self._response = None
            response.release_conn()

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise GoneError(f"watch {self.kind}: {obj.get('message', 'resource version gone')}")
            raise failures.from_response(
                int(obj.get("code") or 500), json.dumps(obj).encode(), f"watch {self.kind}"
            )
        version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        if kind == "BOOKMARK":
            self.resource_version = version or self.resource_version
            return
        obj.setdefault("kind", self.kind)
        key = key_of(obj)
        with self._lock:
            if kind == "DELETED":
                self._items.pop(key, None)
                self._problems.pop(key, None)
            else:
                self._convert_into(obj, self._items, self._problems)
        self.resource_version = version or self.resource_version

    def _convert_into(
        self, obj: dict[str, Any], items: dict[str, T], problems: dict[str, str]
    ) -> None:
        key = key_of(obj)
        try:
            items[key] = self._transform(obj)
            problems.pop(key, None)
        except errors.InvalidInputError as e:
            items.pop(key, None)
            problems[key] = str(e)

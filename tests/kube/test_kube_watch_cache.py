"""The informer cache against a working fake of the API (same `call`/`raw` interface): paginated
list, watch events applied in order, bookmarks, a 410 Gone relists, bad objects become problems."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from kopilot.kits import clocks
from kopilot.kube import caches, converting, failures
from kopilot.model import errors


def node(name: str, version: str, cpu: str = "4") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": version},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "8Gi"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


class Stream:
    """A watch response: JSON lines, then the server closes it."""

    def __init__(self, events: list[dict[str, Any]], done: threading.Event) -> None:
        self._lines = [json.dumps(e).encode() + b"\n" for e in events]
        self._done = done

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        yield from self._lines
        self._done.set()

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeApi:
    """Serves LIST pages and a scripted sequence of WATCH streams, and records the queries."""

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[list[dict[str, Any]]]):
        self.lists = lists
        self.watches = watches
        self.queries: list[Mapping[str, Any]] = []
        self.watched = threading.Event()
        self.finished = threading.Event()

    def call(
        self, method: str, path: str, what: str, *, query: Mapping[str, Any] | None = None, **_: Any
    ) -> dict[str, Any]:
        query = query or {}
        self.queries.append(query)
        items = self.lists[0]
        # two pages: the first carries a continue token; the next list serves the next script
        if "continue" not in query:
            return {"metadata": {"continue": "page-2", "resourceVersion": ""}, "items": items[:1]}
        if len(self.lists) > 1:
            self.lists.pop(0)
        return {"metadata": {"resourceVersion": "100"}, "items": items[1:]}

    def raw(
        self, method: str, path: str, what: str, *, query: Mapping[str, Any] | None = None, **_: Any
    ) -> Stream:
        self.queries.append(query or {})
        if not self.watches:
            self.finished.set()
            raise failures.UnavailableError("no more scripted watches")
        return Stream(self.watches.pop(0), self.watched)


def informer(api: FakeApi) -> caches.Informer[converting.NodeInfo]:
    def convert(raw: dict[str, Any]) -> converting.NodeInfo:
        return converting.node_info(raw)  # type: ignore[arg-type]

    return caches.Informer(
        kind="Node",
        path=caches.NODES,
        transform=convert,
        api=api,  # type: ignore[arg-type]
        clock=clocks.VirtualClock(),
    )


def test_list_then_watch_applies_events_and_relists_after_gone() -> None:
    api = FakeApi(
        lists=[
            [node("a", "1"), node("b", "2")],
            [node("a", "7", cpu="8"), node("c", "8")],
        ],
        watches=[
            [
                {"type": "ADDED", "object": node("c", "101")},
                {"type": "MODIFIED", "object": node("a", "102", cpu="16")},
                {"type": "DELETED", "object": node("b", "103")},
                {"type": "ADDED", "object": node("bad", "104", cpu="lots")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "150"}}},
            ],
            [{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}],
        ],
    )
    inf = informer(api)
    inf.relist()
    assert set(inf.items()) == {"a", "b"}
    assert inf.resource_version == "100"
    assert api.queries[0] == {"limit": 500, "resourceVersion": "0"}
    assert api.queries[1] == {"limit": 500, "continue": "page-2"}

    inf._watch()
    items = inf.items()
    assert set(items) == {"a", "c"}
    assert items["a"].cpu_milli == 16_000
    assert "bad" in inf.problems() and "not a Kubernetes quantity" in inf.problems()["bad"]
    assert inf.resource_version == "150"  # the bookmark moved it
    watch_query = api.queries[-1]
    assert watch_query["watch"] is True and watch_query["resourceVersion"] == "100"
    assert watch_query["allowWatchBookmarks"] is True

    try:
        inf._watch()
    except caches.GoneError:
        pass
    else:
        raise AssertionError("a 410 in the watch must ask for a relist")
    inf.relist()
    assert set(inf.items()) == {"a", "c"} and inf.items()["a"].cpu_milli == 8000
    assert inf.relists == 2


def test_the_background_thread_resumes_and_survives_failures() -> None:
    api = FakeApi(
        # after the failure the thread lists again: the server's state by then has no "b"
        lists=[[node("a", "1"), node("b", "2")], [node("a", "1")]],
        watches=[[{"type": "DELETED", "object": node("b", "3")}]],
    )
    inf = informer(api)
    inf.start()
    try:
        assert inf.wait_synced(5)
        assert api.finished.wait(5)  # watched, then the fake failed: the thread backs off
        deadline = time.monotonic() + 5
        while inf.relists < 2 and time.monotonic() < deadline:  # ... and lists again
            time.sleep(0.01)
        assert inf.relists >= 2
        assert set(inf.items()) == {"a"}
        assert inf.last_error is not None and "no more scripted watches" in inf.last_error
    finally:
        inf.stop()
    assert isinstance(failures.UnavailableError("x"), errors.TemporaryError)


def test_a_status_error_in_the_watch_is_classified() -> None:
    api = FakeApi(
        lists=[[node("a", "1"), node("b", "2")]],
        watches=[[{"type": "ERROR", "object": {"code": 403, "message": "forbidden"}}]],
    )
    inf = informer(api)
    inf.relist()
    try:
        inf._watch()
    except failures.RejectedError as e:
        assert "forbidden" in str(e)
    else:
        raise AssertionError("a 403 in the watch must raise")

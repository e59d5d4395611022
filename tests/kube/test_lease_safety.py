"""The Lease elector's safety, property-tested: under any interleaving of ticks, pauses (a process
stalled or cut off from the API server) and clock offsets, two electors are never leader at the
same instant; and a follower takes over once the leader has been silent for a lease duration.

The API is a working in-memory fake with the API server's optimistic concurrency: a PUT whose
resourceVersion is stale gets a 409, a POST of an existing Lease gets a 409."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kopilot.kube import failures, leases

SETTINGS = leases.LeaseSettings(
    namespace="ns", name="kopilot", lease_duration_s=15.0, renew_deadline_s=10.0, retry_period_s=2.0
)


class LeaseStore:
    """One Lease object behind GET/POST/PUT with resourceVersion checks; `down` = unreachable."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down: set[str] = set()

    def api(self, who: str) -> Any:
        store = self

        class Api:
            def call(
                self,
                method: str,
                path: str,
                what: str,
                *,
                body: Mapping[str, Any] | None = None,
                **_: Any,
            ) -> dict[str, Any]:
                if who in store.down:
                    raise failures.UnavailableError(f"{what}: connection refused")
                if method == "GET":
                    if store.lease is None:
                        raise failures.NotFoundError(f"{what}: HTTP 404")
                    return copy.deepcopy(store.lease)
                assert body is not None
                if method == "POST" and store.lease is not None:
                    raise failures.ConflictError(f"{what}: HTTP 409 already exists")
                if method == "PUT":
                    assert store.lease is not None
                    sent = body.get("metadata", {}).get("resourceVersion")
                    if sent != store.lease["metadata"]["resourceVersion"]:
                        raise failures.ConflictError(f"{what}: HTTP 409 conflict")
                store.version += 1
                store.lease = copy.deepcopy(dict(body))
                store.lease["metadata"] = {
                    **store.lease.get("metadata", {}),
                    "resourceVersion": str(store.version),
                }
                return copy.deepcopy(store.lease)

        return Api()


class OffsetClock:
    """One machine's clock: the shared true time plus a fixed offset (clocks differ)."""

    def __init__(self, world: list[float], offset: float) -> None:
        self._world = world
        self.offset = offset

    def now(self) -> float:
        return self._world[0] + self.offset

    def sleep(self, seconds: float) -> None:
        self._world[0] += seconds


def make(offsets: tuple[float, float]) -> tuple[list[float], LeaseStore, list[leases.LeaseElector]]:
    world = [1_000_000.0]
    store = LeaseStore()
    electors = [
        leases.LeaseElector(
            store.api(name),  # type: ignore[arg-type]
            identity=name,
            clock=OffsetClock(world, offset),
            settings=SETTINGS,
        )
        for name, offset in zip(("a", "b"), offsets, strict=True)
    ]
    return world, store, electors


step = st.tuples(
    st.sampled_from(["a", "b", "both"]),  # who ticks
    st.floats(min_value=0.0, max_value=20.0),  # how much true time passes first
    st.sampled_from([None, "a", "b"]),  # who cannot reach the API server during this step
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(step, min_size=1, max_size=60),
    offsets=st.tuples(st.floats(-3600, 3600), st.floats(-3600, 3600)),
)
def test_never_two_leaders_at_once(
    steps: list[tuple[str, float, str | None]], offsets: tuple[float, float]
) -> None:
    world, store, (a, b) = make(offsets)
    for who, dt, cut in steps:
        world[0] += dt
        store.down = {cut} if cut else set()
        for e in (a, b):
            if who in (e.identity, "both"):
                e.tick()
        assert not (a.is_leader() and b.is_leader()), (world[0], store.lease)


def test_a_silent_leader_is_replaced_after_one_lease_duration() -> None:
    world, store, (a, b) = make((0.0, 120.0))
    assert a.tick()
    assert not b.tick()
    for _ in range(3):  # a renews; b keeps seeing a live lease
        world[0] += 2.0
        assert a.tick() and not b.tick()
    store.down = {"a"}  # a is cut off: it cannot renew
    took_over_at = None
    for _ in range(20):
        world[0] += 1.0
        a.tick()
        if b.tick():
            took_over_at = world[0]
            break
    assert took_over_at is not None
    assert not a.is_leader()  # fenced itself off before b took over
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] == "b"
    assert store.lease["spec"]["leaseTransitions"] == 1


def test_release_hands_over_without_waiting() -> None:
    world, _, (a, b) = make((0.0, 0.0))
    assert a.tick()
    assert a.release()
    world[0] += 2.0
    assert b.tick()
    assert not a.is_leader()

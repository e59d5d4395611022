"""The serving twin: cold starts delay capacity, unserved demand is counted exactly, runs repeat."""

from __future__ import annotations

import numpy as np
import pytest

from kopilot.kits import randomness
from kopilot.model import actions, resources, series
from kopilot.sim import serving


def _spec(**kw: object) -> serving.ServiceSpec:
    base: dict[str, object] = dict(
        name="svc",
        namespace="ml",
        capacity_rps=10.0,
        min_replicas=0,
        max_replicas=20,
        initial_replicas=1,
        request=resources.Resources(gpus=1),
        startup_overhead_s=0.0,
        expected_cold_start_s=100.0,
    )
    base.update(kw)
    return serving.ServiceSpec(**base)  # type: ignore[arg-type]


def test_hand_computed_unserved_demand_and_replica_time() -> None:
    # Demand 10 req/s for 100 s, then 30 req/s for 100 s. One replica serves 10 req/s.
    demand = series.Series.of([0.0, 100.0, 200.0], [10.0, 30.0, 0.0])
    world = serving.ServingWorld(_spec(), demand, np.array([50.0]), randomness.rng(1, "t"))
    # At t=100 scale to 3; the two new replicas are ready at t=150 (cold start 50 s).
    world.account(100.0)
    world.apply(actions.Scale(service="ml/svc", replicas=3, current=1, reason="t"), 100.0)
    world.account(200.0)
    t = world.totals
    assert t.requests == pytest.approx(10 * 100 + 30 * 100)
    assert t.unserved == pytest.approx((30 - 10) * 50)  # 50 s short of 20 req/s
    assert t.violation_s == pytest.approx(50.0)
    assert t.replica_s == pytest.approx(1 * 100 + 3 * 100)
    assert t.ready_replica_s == pytest.approx(100 + 50 + 3 * 50)


def test_scale_down_removes_starting_replicas_first() -> None:
    demand = series.Series.of([0.0, 1000.0], [5.0, 5.0])
    world = serving.ServingWorld(
        _spec(initial_replicas=2), demand, np.array([300.0]), randomness.rng(1, "t")
    )
    world.apply(actions.Scale(service="ml/svc", replicas=4, current=2, reason="t"), 10.0)
    world.apply(actions.Scale(service="ml/svc", replicas=2, current=4, reason="t"), 20.0)
    snap = world.snapshot(30.0)
    assert snap.services[0].replicas == 2 and snap.services[0].ready_replicas == 2


def test_scale_down_does_not_pick_the_slowest_start() -> None:
    # Like a ReplicaSet, the twin cannot know which starting replica will be ready last: of
    # replicas started together, the last started goes first, whatever its hidden cold start.
    demand = series.Series.of([0.0, 1000.0], [5.0, 5.0])
    for seed in range(20):
        world = serving.ServingWorld(
            _spec(initial_replicas=0),
            demand,
            np.array([100.0, 200.0, 300.0, 400.0]),
            randomness.rng(seed, "t"),
        )
        world.apply(actions.Scale(service="ml/svc", replicas=3, current=0, reason="t"), 10.0)
        kept = [r.ready_at for r in world.replicas[:2]]
        world.apply(actions.Scale(service="ml/svc", replicas=2, current=3, reason="t"), 20.0)
        assert [r.ready_at for r in world.replicas] == kept


def test_snapshot_only_shows_the_past() -> None:
    demand = series.Series.of([0.0, 60.0, 120.0, 180.0], [1.0, 2.0, 3.0, 4.0])
    world = serving.ServingWorld(_spec(), demand, np.array([10.0]), randomness.rng(1, "t"))
    snap = world.snapshot(125.0)
    assert list(snap.demand["ml/svc"].values) == [1.0, 2.0, 3.0]


def test_other_actions_are_refused_by_the_twin() -> None:
    demand = series.Series.of([0.0], [1.0])
    world = serving.ServingWorld(_spec(), demand, np.array([10.0]), randomness.rng(1, "t"))
    out = world.apply(actions.Cordon(node="n", reason="t"), 0.0)
    assert not out.ok and "cannot apply Cordon" in out.detail

"""KEDA-style and Knative KPA baselines, and the perfect-foresight oracle."""

from __future__ import annotations

import random

import numpy as np

from kopilot.model import actions, cluster, series
from kopilot.scaling import kpa, oracle
from kopilot.scaling.keda import behaviour

KEY = "ns/svc"


def _svc(replicas: int, ready: int | None = None, *, cap: float = 10.0) -> cluster.ModelService:
    return cluster.ModelService(
        name="svc",
        namespace="ns",
        replicas=replicas,
        ready_replicas=replicas if ready is None else ready,
        capacity_rps=cap,
        cold_start_s=30.0,
        min_replicas=0,
        max_replicas=100,
    )


def _snap(
    svc: cluster.ModelService, times: list[float], values: list[float], now: float
) -> cluster.ClusterSnapshot:
    return cluster.ClusterSnapshot(
        time=now, services=(svc,), demand={KEY: series.Series.of(times, values)}
    )


def _scale(decision: object) -> list[actions.Scale]:
    return [a for a in decision.actions if isinstance(a, actions.Scale)]  # type: ignore[attr-defined]


def test_keda_activates_from_zero_on_a_poll_only() -> None:
    p = behaviour.KedaPolicy()
    d = p.decide(_snap(_svc(0), [0.0], [0.0], 10.0), p.initial_state(), 10.0)
    assert not _scale(d)
    d2 = p.decide(_snap(_svc(0), [0.0, 20.0], [0.0, 5.0], 25.0), d.state, 25.0)
    assert not _scale(d2), "the next poll is 30 s after the last one"
    d3 = p.decide(_snap(_svc(0), [0.0, 20.0], [0.0, 5.0], 40.0), d2.state, 40.0)
    (a,) = _scale(d3)
    assert a.replicas == 1 and "activated" in a.reason


def test_keda_scales_to_zero_after_the_cooldown() -> None:
    p = behaviour.KedaPolicy()
    state = p.initial_state()
    times, values = [0.0], [8.0]
    decided_zero_at = None
    for now in np.arange(0.0, 700.0, 15.0):
        if now > 0:
            times.append(float(now))
            values.append(0.0 if now >= 60 else 8.0)
        d = p.decide(_snap(_svc(1), times, values, float(now)), state, float(now))
        state = d.state
        if any(a.replicas == 0 for a in _scale(d)):
            decided_zero_at = float(now)
            break
    assert decided_zero_at is not None
    # Last active poll at t=30 (t=60 was already 0): inactive from the poll at 60, 300 s cooldown.
    assert 330.0 <= decided_zero_at <= 390.0


def test_keda_treats_missing_metric_as_active() -> None:
    p = behaviour.KedaPolicy()
    state = p.initial_state()
    for now in np.arange(0.0, 1000.0, 30.0):
        snap = cluster.ClusterSnapshot(time=float(now), services=(_svc(2),), demand={})
        d = p.decide(snap, state, float(now))
        state = d.state
        assert not any(a.replicas == 0 for a in _scale(d))


def test_kpa_panics_on_a_burst_and_does_not_scale_down_in_panic() -> None:
    p = kpa.KpaPolicy()
    times = [float(t) for t in range(0, 60, 2)]
    values = [7.0] * len(times)
    d = p.decide(_snap(_svc(1), times, values, 60.0), p.initial_state(), 60.0)
    assert not _scale(d)  # 7 req/s at 7 req/s per pod (70 % of 10)
    times.append(60.0)
    values.append(70.0)  # panic window (56, 62]: (7 + 7 + 70) / 3 = 28 req/s = 4 pods >= 200 % of 1
    d2 = p.decide(_snap(_svc(1), times, values, 62.0), d.state, 62.0)
    (a,) = _scale(d2)
    assert "panic" in a.reason and a.replicas == 4
    # Demand drops right away, but panic mode holds the scale for the stable window.
    times += [64.0, 66.0]
    values += [7.0, 7.0]
    d3 = p.decide(_snap(_svc(a.replicas), times, values, 68.0), d2.state, 68.0)
    assert not _scale(d3)


def test_kpa_scales_to_zero_after_stable_window_and_grace() -> None:
    p = kpa.KpaPolicy()
    state = p.initial_state()
    times: list[float] = []
    values: list[float] = []
    zero_at = None
    for now in np.arange(0.0, 200.0, 2.0):
        times.append(float(now))
        values.append(0.0)
        d = p.decide(_snap(_svc(1), times, values, float(now)), state, float(now))
        state = d.state
        if any(a.replicas == 0 for a in _scale(d)):
            zero_at = float(now)
            break
    assert zero_at is not None and zero_at >= 90.0


def test_oracle_keeps_a_replica_through_a_short_dip_and_restarts_after_a_long_one() -> None:
    cold = np.array([30.0])
    # step 10 s, cap 1: one replica needed in steps 0-2, not 3 (10 s gap < 30 s cold: keep),
    # needed 4-5, then a 100 s gap (> 30 s: stop and restart), needed 16.
    demand = np.array([1, 1, 1, 0, 1, 1] + [0] * 10 + [1], dtype=float)
    r = oracle.plan(demand, 10.0, 1.0, cold, random.Random(1), initial_replicas=1)
    # 3 steps + 10 s kept + 2 steps + 30 s restart + 1 step = 30 + 10 + 20 + 30 + 10
    assert r.replica_seconds == 100.0
    assert r.starts == 1 and r.peak_replicas == 1


def test_oracle_counts_every_slot() -> None:
    demand = np.array([0.5, 2.5, 2.5, 0.5])
    r = oracle.plan(demand, 60.0, 1.0, np.array([20.0]), random.Random(1))
    # slot1: start 20 + 4 steps; slots 2 and 3: start 20 + 2 steps each
    assert r.replica_seconds == 20 + 240 + 2 * (20 + 120)
    assert r.starts == 3

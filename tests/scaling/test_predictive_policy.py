"""kopilot's first scaling policy: plans for the cold start, never below current need, safe on bad data."""

from __future__ import annotations

import math

import numpy as np

from kopilot.model import series
from kopilot.scaling import policies
from tests.builders import make_service, snapshot


def _ramp(now: float, start: float, slope: float, step: float = 60.0) -> series.Series:
    t = np.arange(now - 1800.0, now + 1e-9, step)
    return series.Series.of(t, np.maximum(0.0, start + slope * (t - (now - 1800.0))))


def test_rising_demand_is_planned_for_beyond_the_current_need() -> None:
    policy = policies.PredictivePolicy()
    svc = make_service(replicas=3, capacity_rps=10.0, cold_start_s=120.0)
    demand = _ramp(3600.0, 5.0, 0.05)  # +3 req/s per minute
    d = policy.decide(snapshot(svc, demand={"ml/svc": demand}), policy.initial_state(), 3600.0)
    [act] = d.actions
    now_need = math.ceil(float(demand.values[-1]) / 8.0)
    assert act.replicas > now_need
    assert "forecast" in act.reason


def test_nan_history_falls_back_to_the_reactive_rule_and_says_so() -> None:
    policy = policies.PredictivePolicy()
    svc = make_service(replicas=2, capacity_rps=10.0)
    t = np.arange(0.0, 600.0, 60.0)
    v = np.full(len(t), 40.0)
    v[-1] = np.nan
    d = policy.decide(
        snapshot(svc, demand={"ml/svc": series.Series.of(t, v)}), policy.initial_state(), 540.0
    )
    [act] = d.actions
    assert act.replicas == 5  # ceil(40 / 8)
    assert "data-quality gate" in act.reason and "NaN" in act.reason


def test_stale_history_never_scales_down() -> None:
    policy = policies.PredictivePolicy()
    svc = make_service(replicas=6, capacity_rps=10.0)
    demand = series.Series.of([0.0, 60.0], [1.0, 1.0])
    d = policy.decide(snapshot(svc, demand={"ml/svc": demand}), policy.initial_state(), 3600.0)
    assert d.actions == ()


def test_scale_to_zero_only_after_a_long_idle_stretch() -> None:
    policy = policies.PredictivePolicy()
    svc = make_service(replicas=1, capacity_rps=10.0, min_replicas=0)
    t = np.arange(0.0, 3600.0 + 1, 60.0)
    v = np.where(t < 600.0, 5.0, 0.0)
    early = series.Series(times=t[t <= 1200.0], values=v[t <= 1200.0])
    d = policy.decide(snapshot(svc, demand={"ml/svc": early}), policy.initial_state(), 1200.0)
    assert d.actions == ()
    late = series.Series.of(t, v)
    d = policy.decide(snapshot(svc, demand={"ml/svc": late}), policy.initial_state(), 3600.0)
    assert [a.replicas for a in d.actions] == [0]
    assert "scale to zero" in d.actions[0].reason

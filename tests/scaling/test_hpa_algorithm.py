"""The HPA baseline follows the Kubernetes replica calculator and behaviours."""

from __future__ import annotations

import pytest

from kopilot.model import series
from kopilot.scaling import hpa
from tests.builders import make_service, snapshot


@pytest.mark.parametrize(
    ("ready", "missing", "current", "total", "expected"),
    [
        (4, 0, 4, 40.0, 4),  # exactly on target
        (4, 0, 4, 43.0, 4),  # +7.5 %: inside the 0.1 tolerance
        (4, 0, 4, 60.0, 6),  # ceil(1.5 x 4)
        (4, 0, 4, 10.0, 1),  # ceil(0.25 x 4)
        (4, 2, 6, 60.0, 6),  # starting pods count as 0 on scale-up: 60/(6x10) = 1.0 -> keep
        (4, 2, 6, 100.0, 10),  # ceil(100/(6x10) x 6)
        (4, 2, 6, 20.0, 4),  # scale-down, starting pods count on target: (20+20)/60 -> ceil(4.0)
        (0, 3, 3, 50.0, 3),  # no ready pod reports: keep
    ],
)
def test_replica_calculator(
    ready: int, missing: int, current: int, total: float, expected: int
) -> None:
    got = hpa.replica_count(
        ready=ready,
        missing=missing,
        current=current,
        total_metric=total,
        target_per_pod=10.0,
        tolerance=0.1,
    )
    assert got == expected


def _demand(value: float, t: float) -> dict[str, series.Series]:
    return {"ml/svc": series.Series.of([t], [value])}


def test_scale_down_waits_for_the_stabilization_window() -> None:
    policy = hpa.HpaPolicy(hpa.HpaSettings(target_utilization=1.0))
    svc = make_service(replicas=10, capacity_rps=10.0, max_replicas=50)
    state = policy.initial_state()
    d = policy.decide(snapshot(svc, demand=_demand(100.0, 0.0)), state, 0.0)
    assert d.actions == ()
    # demand drops: the 300 s window still remembers the recommendation of 10
    d = policy.decide(snapshot(svc, demand=_demand(20.0, 15.0)), d.state, 15.0)
    assert d.actions == ()
    t = 15.0
    while t < 300.0:
        t += 15.0
        d = policy.decide(snapshot(svc, demand=_demand(20.0, t)), d.state, t)
    assert [a.replicas for a in d.actions] == [2]


def test_scale_up_is_limited_per_period() -> None:
    policy = hpa.HpaPolicy(hpa.HpaSettings(target_utilization=1.0))
    svc = make_service(replicas=2, capacity_rps=10.0, max_replicas=100)
    d = policy.decide(snapshot(svc, demand=_demand(500.0, 0.0)), policy.initial_state(), 0.0)
    assert [a.replicas for a in d.actions] == [6]  # max(2 x 200 %, 2 + 4)


def test_hpa_never_scales_to_zero() -> None:
    policy = hpa.HpaPolicy()
    svc = make_service(replicas=1, min_replicas=0)
    d = policy.decide(snapshot(svc, demand=_demand(0.0, 0.0)), policy.initial_state(), 0.0)
    assert d.actions == ()

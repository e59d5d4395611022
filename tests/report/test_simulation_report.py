"""The simulate report explains rows that coincide and draws violations and the zoomed fill."""

from __future__ import annotations

import numpy as np

from kopilot.report import simulation
from kopilot.sim import runs


def _result(policy: str, *, violation_minutes: float, low: float = 0.5) -> runs.ServingResult:
    t = np.arange(0.0, 3600.0, 15.0)
    demand = np.full(t.size, 2.0)
    demand[10] = low
    ready = np.full(t.size, 3.0)
    ready[100] = 1.0  # one 15 s tick short: a violation far thinner than a pixel
    return runs.ServingResult(
        policy=policy,
        requests=1000.0,
        unserved=5.0,
        violation_minutes=violation_minutes,
        replica_hours=10.0,
        gpu_hours=10.0,
        cost_usd=12.0,
        approved=3,
        refused=0,
        cold_start_p50_s=20.0,
        samples={"time": t, "demand": demand, "ready_capacity": ready, "replicas": ready},
    )


def test_hpa_and_keda_rows_that_coincide_are_explained() -> None:
    results = [_result("hpa", violation_minutes=4.0), _result("keda", violation_minutes=4.0)]
    [note] = simulation.coinciding(results)
    assert "HPA and KEDA give the same row" in note
    assert "never falls to zero (its lowest is 0.5 req/s)" in note


def test_rows_that_differ_get_no_note() -> None:
    results = [_result("hpa", violation_minutes=4.0), _result("keda", violation_minutes=5.0)]
    assert simulation.coinciding(results) == []


def test_a_short_violation_is_widened_to_be_seen() -> None:
    mask = np.zeros(1000, dtype=bool)
    mask[500] = True
    widened = simulation._widened(mask, 5)
    assert widened.sum() == 5 and widened[500]
    assert not simulation._widened(np.zeros(10, dtype=bool), 5).any()

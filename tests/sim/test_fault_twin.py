"""The fault twin: every injected fault is detected, remediation stays inside the rails and helps."""

from __future__ import annotations

import numpy as np
import pytest

from kopilot.governance import audit
from kopilot.kits import randomness
from kopilot.sim import faults, scenarios
from kopilot.traces import genai

PLAN = faults.FaultPlan(
    hours=13.0, leak_at_h=8.0, xid_at_h=9.0, bad_node_at_h=10.5, regression_at_h=12.0
)


@pytest.fixture(scope="module")
def runs() -> tuple[faults.FaultRun, faults.FaultRun, audit.AuditLog]:
    demand = genai.load_qps(scenarios.locate("genai_qps.csv", None))
    load = faults.load_curve(demand, PLAN.hours)
    log = audit.AuditLog(None)
    observe = faults.run(load, PLAN, lambda: randomness.rng(5, "faults"), remediate=False)
    remediate = faults.run(
        load, PLAN, lambda: randomness.rng(5, "faults"), remediate=True, audit_path=log
    )
    return observe, remediate, log


def test_every_fault_is_detected_soon_after_it_starts(runs) -> None:
    observe, remediate, _ = runs
    for run in (observe, remediate):
        for o in run.outcomes:
            assert o.delay_min is not None, o.fault
            assert 0 <= o.delay_min <= 120, (o.fault, o.delay_min)
        assert run.false_alarms <= 2


def test_remediation_saves_what_it_claims(runs) -> None:
    observe, remediate, _ = runs
    assert observe.impact.oom_kills >= 1
    assert remediate.impact.oom_kills < observe.impact.oom_kills
    assert remediate.impact.failed_requests < 0.5 * observe.impact.failed_requests
    assert (
        remediate.impact.pod_minutes_on_broken_hardware
        < observe.impact.pod_minutes_on_broken_hardware
    )


def test_observe_only_touches_nothing_and_remediation_is_governed(runs) -> None:
    observe, _, log = runs
    assert observe.outcomes[0].remedy.startswith("restart")  # proposed and recorded, not applied
    cordoned = {
        r["action"]["node"]
        for r in log.records
        if r["action"]["kind"] == "Cordon" and r["outcome"] == "approved"
    }
    assert cordoned <= {faults.node_name(PLAN.xid_node), faults.node_name(PLAN.bad_node)}
    assert len(cordoned) <= 2  # the blast-radius limit of the run
    assert all(r["action"]["reason"] for r in log.records)


def test_load_curve_is_normalised_and_repeats() -> None:
    demand = genai.load_qps(scenarios.locate("genai_qps.csv", None))
    load = faults.load_curve(demand, 48.0)
    assert len(load) == 48 * 120
    assert float(load.max()) == pytest.approx(1.0) and float(load.min()) >= 0.0
    assert np.all(np.isfinite(load))

"""Running a scenario: every policy against the same trace, the same seed, the same guardrails."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kopilot.governance import audit, governor, guardrails, verdicts
from kopilot.kits import randomness
from kopilot.loop import cycles
from kopilot.model import decisions, resources, series
from kopilot.scaling import hpa, kpa, planning
from kopilot.scaling.keda import behaviour
from kopilot.sim import scenarios, serving
from kopilot.traces import genai

Progress = Callable[[str, float], None]
"""Called with (what, fraction done in 0..1)."""


def scaling_policy(name: str) -> decisions.Policy[Any]:
    """The scaling policies the twin can compare, by name (see `scenarios.SCALING_POLICIES`)."""
    match name:
        case "hpa":
            return hpa.HpaPolicy()
        case "keda":
            return behaviour.KedaPolicy()
        case "kpa":
            return kpa.KpaPolicy()
        case "kopilot":
            return planning.ForecastPolicy()
        case _:
            raise ValueError(
                f"unknown scaling policy {name!r}; choose from {list(scenarios.SCALING_POLICIES)}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingResult:
    policy: str
    requests: float
    unserved: float
    violation_minutes: float
    replica_hours: float
    gpu_hours: float
    cost_usd: float
    approved: int
    refused: int
    cold_start_p50_s: float
    samples: dict[str, np.ndarray]
    """Per tick: time, demand, ready capacity, replicas."""

    @property
    def unserved_pct(self) -> float:
        return 100.0 * self.unserved / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingInputs:
    demand: series.Series
    cold_starts_s: np.ndarray
    spec: serving.ServiceSpec


def serving_inputs(scenario: scenarios.Scenario, base: Path | None) -> ServingInputs:
    svc = scenario.service
    demand = genai.load_qps(scenarios.locate(svc.demand_trace, base))
    if svc.demand_scale != 1.0:
        demand = series.Series.of(demand.times, demand.values * svc.demand_scale)
    cold = genai.load_cold_starts(scenarios.locate(svc.cold_start_trace, base))
    spec = serving.ServiceSpec(
        name=svc.name,
        namespace=svc.namespace,
        capacity_rps=svc.capacity_rps,
        min_replicas=svc.min_replicas,
        max_replicas=svc.max_replicas,
        initial_replicas=svc.initial_replicas,
        request=resources.Resources(
            cpu_milli=svc.request.cpu_milli,
            memory_mib=svc.request.memory_mib,
            gpus=svc.request.gpus,
        ),
        startup_overhead_s=svc.startup_overhead_s,
        expected_cold_start_s=serving.expected_cold_start(cold, svc.startup_overhead_s),
    )
    return ServingInputs(demand=demand, cold_starts_s=cold, spec=spec)


def run_serving(
    scenario: scenarios.Scenario,
    inputs: ServingInputs,
    policy_name: str,
    *,
    audit_path: Path | None,
    progress: Progress | None = None,
) -> ServingResult:
    """Replay the demand trace against one scaling policy, through the governor, with an audit log."""
    world = serving.ServingWorld(
        inputs.spec,
        inputs.demand,
        inputs.cold_starts_s,
        randomness.rng(scenario.seed, "cold-start"),
    )
    g = scenario.guardrails
    rails = guardrails.Guardrails(
        dry_run=g.dry_run,
        window_s=g.window_s,
        max_per_kind={"Scale": g.max_scale_actions_per_window},
        max_per_target=max(g.max_scale_actions_per_window, 1),
        max_scale_step=g.max_scale_step,
        cooldown_s={},
    )
    gov = governor.Governor(rails)
    log = audit.AuditLog(audit_path, fresh=True)
    slot = cycles.PolicySlot(scaling_policy(policy_name))
    ticks = np.arange(world.start, world.end + 1e-9, scenario.tick_s)
    samples = np.zeros((len(ticks), 4))
    approved = refused = 0
    for i, now in enumerate(ticks):
        world.account(float(now))
        report = cycles.run_cycle(world, [slot], gov, log, float(now))
        approved += report.count(verdicts.Outcome.APPROVED) + report.count(verdicts.Outcome.DRY_RUN)
        refused += report.count(verdicts.Outcome.REFUSED)
        samples[i] = (
            now,
            world.demand_at(float(now)),
            world.ready_capacity(float(now)),
            len(world.replicas),
        )
        if progress is not None and i % 200 == 0:
            progress(f"serving: {policy_name}", i / len(ticks))
    world.account(world.end)
    if progress is not None:
        progress(f"serving: {policy_name}", 1.0)
    t = world.totals
    replica_h = t.replica_s / 3600.0
    req = inputs.spec.request
    prices = scenario.prices
    cost = replica_h * (
        req.gpus * prices.gpu_hour
        + req.cpu_milli / 1000.0 * prices.cpu_core_hour
        + req.memory_mib / 1024.0 * prices.memory_gb_hour
    )
    return ServingResult(
        policy=policy_name,
        requests=t.requests,
        unserved=t.unserved,
        violation_minutes=t.violation_s / 60.0,
        replica_hours=replica_h,
        gpu_hours=replica_h * req.gpus,
        cost_usd=cost,
        approved=approved,
        refused=refused,
        cold_start_p50_s=float(np.median(t.cold_starts)) if t.cold_starts else 0.0,
        samples={
            "time": samples[:, 0],
            "demand": samples[:, 1],
            "ready_capacity": samples[:, 2],
            "replicas": samples[:, 3],
        },
    )

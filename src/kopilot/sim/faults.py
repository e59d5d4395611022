"""The fault twin: a GPU model service whose metrics go wrong in known ways, to score the health loop.

Twelve replicas of `ml/detector` run on six 4-GPU nodes. Every 30 s each replica reports memory,
p99 latency and errors; each GPU reports temperature and XID errors; each node reports its error
rate. Normal behaviour follows the real Alibaba GenAI demand curve (load drives latency, memory and
temperature) plus seeded noise. After a day of normal history, faults are injected:

| fault | what happens if nobody acts | the remedy that helps |
|---|---|---|
| memory leak in one replica | memory grows until the pod is OOM-killed, again and again | restart it before the limit |
| GPU with rising XID errors | errors grow, then the GPU falls off the bus and its pods fail | cordon and drain the node |
| a node going bad | node errors jump, its pods' latency doubles and they fail requests | cordon and drain the node |
| latency regression after a deploy | every replica is 50 % slower | an alert to the people who deployed |

The same seed runs twice: once observing only (dry-run) and once remediating through the governor.
The difference in OOM-kills, failed requests and pod-minutes on broken hardware is what the
remediation saved. Findings on streams no fault touches are false alarms.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kopilot.governance import audit, governor, guardrails, verdicts
from kopilot.health import monitors
from kopilot.loop import cycles, worlds
from kopilot.model import actions, cluster, resources, series
from kopilot.sim import behaviours

TICK_S = 30.0
NODES = 6
GPUS_PER_NODE = 4
PODS = 12
SERVICE = "ml/detector"
MEMORY_LIMIT_MIB = behaviours.REFERENCE_LIMIT_MIB
WINDOW = 120
"""Points of history each stream shows in a snapshot (one hour)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    leak_pod: int = 3
    leak_at_h: float = 26.0
    leak_mib_per_min: float = 12.0
    xid_node: int = 2
    xid_gpu: int = 1
    xid_at_h: float = 28.0
    xid_fatal_after_h: float = 2.0
    bad_node: int = 4
    bad_node_at_h: float = 30.5
    regression_at_h: float = 33.0
    regression_factor: float = 1.5
    hours: float = 36.0


@dataclass(slots=True)
class Impact:
    oom_kills: int = 0
    failed_requests: float = 0.0
    pod_minutes_on_broken_hardware: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultOutcome:
    fault: str
    onset: float
    detected_at: float | None
    remedy: str
    remedied_at: float | None
    stream: str
    """The stream that shows the fault best (for the plot)."""

    @property
    def delay_min(self) -> float | None:
        return None if self.detected_at is None else (self.detected_at - self.onset) / 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRun:
    remediating: bool
    impact: Impact
    outcomes: tuple[FaultOutcome, ...]
    false_alarms: int
    findings: int
    approved: int
    refused: int
    history: dict[str, np.ndarray]
    times: np.ndarray


def pod_name(i: int) -> str:
    return f"ml/detector-{i}"


def node_name(n: int) -> str:
    return f"gpu-node-{n}"


class FaultWorld:
    """The twin's cluster and metric streams (a World)."""

    def __init__(self, load: np.ndarray, plan: FaultPlan, rng: random.Random) -> None:
        self.plan = plan
        self.load = load
        self.noise = np.random.default_rng(rng.getrandbits(64))
        self.ticks = len(load)
        self.times = np.arange(self.ticks, dtype=np.float64) * TICK_S
        self.placement = {i: (i // 2, i % 2) for i in range(PODS)}
        self.leak = np.zeros(PODS)
        self.cordoned: set[int] = set()
        self.shifted: set[int] = set()
        """Pods whose traffic was shifted away: they fail no requests while they take none."""
        self.keys: list[str] = []
        for i in range(PODS):
            self.keys += [
                f"pod/{pod_name(i)}/{m}" for m in ("memory_mib", "latency_ms", "errors_per_min")
            ]
        for n in range(NODES):
            for g in range(GPUS_PER_NODE):
                self.keys += [
                    f"gpu/{node_name(n)}/{g}/{m}" for m in ("temperature_c", "xid_per_min")
                ]
            self.keys.append(f"node/{node_name(n)}/errors_per_min")
        self.index = {k: j for j, k in enumerate(self.keys)}
        self.history = np.full((len(self.keys), self.ticks), np.nan)
        self.impact = Impact()
        self.step = -1

    # -- faults as functions of time -------------------------------------------------------
    def _h(self, t: float) -> float:
        return t / 3600.0

    def xid_rate(self, t: float) -> float:
        return behaviours.xid_rate_per_min(self._h(t) - self.plan.xid_at_h)

    def gpu_dead(self, t: float) -> bool:
        return self._h(t) - self.plan.xid_at_h >= self.plan.xid_fatal_after_h

    def node_bad(self, t: float) -> bool:
        return self._h(t) >= self.plan.bad_node_at_h

    def regressed(self, t: float) -> bool:
        return self._h(t) >= self.plan.regression_at_h

    # -- one step of metrics ---------------------------------------------------------------
    def advance(self) -> None:
        """Produce the metrics of the next tick, given where pods are now."""
        self.step += 1
        k, t, load = self.step, float(self.times[self.step]), float(self.load[self.step])
        p, rnd = self.plan, self.noise
        for i in range(PODS):
            node, gpu = self.placement[i]
            if i == p.leak_pod and self._h(t) >= p.leak_at_h:
                self.leak[i] += p.leak_mib_per_min * TICK_S / 60.0
            memory = behaviours.memory_mib(load, rnd) + self.leak[i]
            extra_errors = 0.0
            if memory >= MEMORY_LIMIT_MIB:
                self.impact.oom_kills += 1
                self.leak[i] = 0.0
                extra_errors += behaviours.OOM_KILL_ERRORS
                memory = behaviours.quiet_memory_mib(load)
            slow = 1.0
            on_broken = False
            if node == p.xid_node and gpu == p.xid_gpu:
                extra_errors += rnd.poisson(0.5 * self.xid_rate(t))
                if self.gpu_dead(t):
                    extra_errors += behaviours.DEAD_GPU_ERRORS_PER_MIN
                    slow *= behaviours.DEAD_GPU_SLOWDOWN
                on_broken = self.xid_rate(t) > 0
            if node == p.bad_node and self.node_bad(t):
                extra_errors += rnd.poisson(behaviours.BAD_NODE_ERRORS_PER_MIN)
                slow *= behaviours.BAD_NODE_SLOWDOWN
                on_broken = True
            if self.regressed(t):
                slow *= p.regression_factor
            if on_broken:
                self.impact.pod_minutes_on_broken_hardware += TICK_S / 60.0
            if i not in self.shifted:
                self.impact.failed_requests += extra_errors * TICK_S / 60.0
            latency = behaviours.latency_ms(load, rnd, slowdown=slow)
            errors = behaviours.baseline_errors(rnd) + extra_errors
            self._put(
                f"pod/{pod_name(i)}",
                k,
                memory_mib=memory,
                latency_ms=latency,
                errors_per_min=errors,
            )
        for n in range(NODES):
            for g in range(GPUS_PER_NODE):
                xid = rnd.poisson(
                    0.002 + (self.xid_rate(t) if (n, g) == (p.xid_node, p.xid_gpu) else 0.0)
                )
                temp = behaviours.temperature_c(load, rnd)
                self._put(f"gpu/{node_name(n)}/{g}", k, temperature_c=temp, xid_per_min=float(xid))
            bad = n == p.bad_node and self.node_bad(t)
            self._put(
                f"node/{node_name(n)}", k, errors_per_min=float(rnd.poisson(20.0 if bad else 0.5))
            )

    def _put(self, prefix: str, k: int, **values: float) -> None:
        for metric, v in values.items():
            self.history[self.index[f"{prefix}/{metric}"], k] = v

    # -- World port ------------------------------------------------------------------------
    def snapshot(self, now: float) -> cluster.ClusterSnapshot:
        k = self.step
        lo = max(0, k - WINDOW + 1)
        t = self.times[lo : k + 1]
        metrics = {
            key: series.Series(times=t, values=self.history[j, lo : k + 1])
            for key, j in self.index.items()
        }
        nodes = tuple(
            cluster.Node(
                name=node_name(n),
                cpu_milli=64000,
                memory_mib=262144,
                gpus=tuple(cluster.Gpu(index=g, model="A100-80GB") for g in range(GPUS_PER_NODE)),
                unschedulable=n in self.cordoned,
            )
            for n in range(NODES)
        )
        pods = tuple(
            cluster.Pod(
                name=pod_name(i).split("/", 1)[1],
                namespace="ml",
                request=resources.Resources(cpu_milli=4000, memory_mib=8192, gpus=1),
                node=node_name(node),
                gpu_indices=(gpu,),
                phase=cluster.PodPhase.RUNNING,
                service=SERVICE,
            )
            for i, (node, gpu) in self.placement.items()
        )
        svc = cluster.ModelService(
            name="detector",
            namespace="ml",
            replicas=PODS,
            ready_replicas=PODS,
            capacity_rps=10.0,
            cold_start_s=60.0,
            min_replicas=PODS,
            max_replicas=2 * PODS,
        )
        return cluster.ClusterSnapshot(
            time=now, nodes=nodes, pods=pods, services=(svc,), metrics=metrics
        )

    def apply(self, action: actions.Action, now: float) -> worlds.Applied:
        match action:
            case actions.Restart():
                i = int(action.pod.rsplit("-", 1)[1])
                self.leak[i] = 0.0
                self.impact.failed_requests += 2.0
                return worlds.Applied(ok=True)
            case actions.Cordon(uncordon=False):
                n = int(action.node.rsplit("-", 1)[1])
                self.cordoned.add(n)
                if action.drain:
                    self._drain(n)
                return worlds.Applied(ok=True)
            case actions.Recommend(resource="traffic-weight", recommended=0.0):
                self.shifted.add(int(action.subject.rsplit("-", 1)[1]))
                return worlds.Applied(ok=True)
            case actions.Cordon(uncordon=True):
                self.cordoned.discard(int(action.node.rsplit("-", 1)[1]))
                return worlds.Applied(ok=True)
            case _:
                return worlds.Applied(
                    ok=True, detail=f"{action.kind} recorded; the fault twin does not model it"
                )

    def _drain(self, n: int) -> None:
        """Move the node's pods to free GPUs on schedulable nodes (fewest pods first)."""
        used = {v for v in self.placement.values()}
        free = [
            (m, g)
            for m in range(NODES)
            if m not in self.cordoned
            for g in range(GPUS_PER_NODE)
            if (m, g) not in used
        ]
        for i, (node, _) in sorted(self.placement.items()):
            if node == n and free:
                free.sort(
                    key=lambda mg: (sum(1 for v in self.placement.values() if v[0] == mg[0]), mg)
                )
                self.placement[i] = free.pop(0)


def _related(key: str, plan: FaultPlan) -> str | None:
    """Which fault a stream belongs to, if any."""
    if key.startswith(f"pod/{pod_name(plan.leak_pod)}/memory"):
        return "leak"
    if key.startswith(f"gpu/{node_name(plan.xid_node)}/{plan.xid_gpu}/"):
        return "xid"
    if key.startswith(f"node/{node_name(plan.bad_node)}/"):
        return "bad-node"
    if key.endswith("/latency_ms") or key.endswith("/errors_per_min"):
        return "pods"
    return None


def run(
    load: np.ndarray,
    plan: FaultPlan,
    rng_factory: Callable[[], random.Random],
    *,
    remediate: bool,
    audit_path: audit.AuditLog | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> FaultRun:
    world = FaultWorld(load, plan, rng_factory())
    rails = guardrails.Guardrails(
        dry_run=not remediate,
        max_cordoned_nodes=2,
        max_disrupted_fraction=0.25,
        cooldown_s={"Restart": 1800.0, "Cordon": 3600.0},
    )
    gov = governor.Governor(rails)
    log = audit_path or audit.AuditLog(None)
    policy = monitors.HealthPolicy()
    slot = cycles.PolicySlot(policy)
    first_action: dict[str, tuple[float, str]] = {}
    onsets = {
        "leak": plan.leak_at_h * 3600,
        "xid": plan.xid_at_h * 3600,
        "bad-node": plan.bad_node_at_h * 3600,
        "regression": plan.regression_at_h * 3600,
    }
    approved = refused = 0
    label = "faults: remediate" if remediate else "faults: observe only"
    for k in range(world.ticks):
        world.advance()
        now = float(world.times[k])
        report = cycles.run_cycle(world, [slot], gov, log, now)
        for v in report.judged:
            if v.outcome is verdicts.Outcome.REFUSED:
                refused += 1
                continue
            if v.outcome not in (verdicts.Outcome.APPROVED, verdicts.Outcome.DRY_RUN):
                continue
            approved += 1
            fault = _fault_of_action(v.action, plan)
            if fault is not None and fault not in first_action and now >= onsets[fault]:
                first_action[fault] = (now, actions.describe(v.action))
        if progress is not None and k % 250 == 0:
            progress(label, k / world.ticks)
    if progress is not None:
        progress(label, 1.0)
    state: monitors.MonitorState = slot.state
    first_seen: dict[str, float] = {}
    false_alarms = 0
    for f in state.findings:
        fault = _finding_fault(f, plan, onsets)
        if fault is None:
            false_alarms += 1
        elif fault not in first_seen:
            first_seen[fault] = f.at
    streams = {
        "leak": f"pod/{pod_name(plan.leak_pod)}/memory_mib",
        "xid": f"gpu/{node_name(plan.xid_node)}/{plan.xid_gpu}/xid_per_min",
        "bad-node": f"node/{node_name(plan.bad_node)}/errors_per_min",
        "regression": f"pod/{pod_name(0)}/latency_ms",
    }
    names = {
        "leak": f"memory leak in {pod_name(plan.leak_pod)}",
        "xid": f"rising XID errors on {node_name(plan.xid_node)} GPU {plan.xid_gpu}",
        "bad-node": f"{node_name(plan.bad_node)} going bad",
        "regression": "latency regression after a deploy",
    }
    outcomes = tuple(
        FaultOutcome(
            fault=names[f],
            onset=onsets[f],
            detected_at=first_seen.get(f),
            remedy=first_action[f][1] if f in first_action else "none",
            remedied_at=first_action[f][0] if f in first_action else None,
            stream=streams[f],
        )
        for f in ("leak", "xid", "bad-node", "regression")
    )
    return FaultRun(
        remediating=remediate,
        impact=world.impact,
        outcomes=outcomes,
        false_alarms=false_alarms,
        findings=len(state.findings),
        approved=approved,
        refused=refused,
        history={s: world.history[world.index[s]].copy() for s in streams.values()},
        times=world.times.copy(),
    )


def _finding_fault(f: monitors.Finding, plan: FaultPlan, onsets: dict[str, float]) -> str | None:
    related = _related(f.key, plan)
    if related is None:
        return None
    if related == "pods":
        # Pod latency/errors: the regression (any pod), or the effects of the broken GPU / node.
        i = int(f.key.split("/")[2].rsplit("-", 1)[1])
        node, gpu = i // 2, i % 2
        candidates = ["regression"] if f.key.endswith("latency_ms") else []
        if (node, gpu) == (plan.xid_node, plan.xid_gpu):
            candidates.append("xid")
        if node == plan.bad_node:
            candidates.append("bad-node")
        if i == plan.leak_pod:
            candidates.append("leak")
        live = [c for c in candidates if f.at >= onsets[c]]
        return max(live, key=lambda c: onsets[c]) if live else None
    return related if f.at >= onsets[related] else None


def _fault_of_action(action: actions.Action, plan: FaultPlan) -> str | None:
    match action:
        case actions.Restart() if action.pod == pod_name(plan.leak_pod):
            return "leak"
        case actions.Cordon() if action.node == node_name(plan.xid_node):
            return "xid"
        case actions.Cordon() if action.node == node_name(plan.bad_node):
            return "bad-node"
        case actions.Alert() if action.subject.startswith("pod/") and "latency" in action.reason:
            return "regression"
        case _:
            return None


def load_curve(demand: series.Series, hours: float) -> np.ndarray:
    """The demand trace, normalised to [0, 1], repeated to cover `hours`, sampled every tick."""
    t = demand.times - demand.times[0]
    span = float(t[-1]) + TICK_S
    at = (np.arange(int(hours * 3600 / TICK_S)) * TICK_S) % span
    idx = np.clip(np.searchsorted(t, at, side="right") - 1, 0, len(t) - 1)
    v = demand.values[idx]
    top = float(np.max(v)) or 1.0
    return np.asarray(v / top, dtype=np.float64)


__all__ = ["FaultPlan", "FaultRun", "FaultWorld", "load_curve", "run"]

"""The Kubernetes Horizontal Pod Autoscaler, as a pure policy: the baseline to beat.

This follows `pkg/controller/podautoscaler` (replica_calculator.go, horizontal.go) for a Pods-type
metric with an AverageValue target (requests per second per pod):

- every sync period (15 s) the metric is averaged over *ready* pods;
- usage ratio = average / target; within the tolerance (0.1) nothing changes;
- otherwise desired = ceil(ratio x ready pods); pods still starting report no metric ("missing"):
  they count as 0 on a scale-up and as on-target on a scale-down, which holds back both;
- scale-up is limited per period by the default behaviour: max(100 %, 4 pods) per 15 s;
- scale-down takes the highest recommendation of the last 300 s (stabilization window);
- the result is clamped to [minReplicas, maxReplicas] (minReplicas >= 1: HPA never scales to zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kopilot.model import actions, cluster, decisions


@dataclass(frozen=True, slots=True, kw_only=True)
class HpaSettings:
    target_utilization: float = 0.8
    """Target average requests/s per pod, as a fraction of a replica's SLO capacity."""
    tolerance: float = 0.1
    sync_period_s: float = 15.0
    downscale_stabilization_s: float = 300.0
    scale_up_percent: float = 100.0
    scale_up_pods: int = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class HpaState:
    last_sync: float = -math.inf
    recommendations: tuple[tuple[float, int], ...] = ()
    """(time, recommendation) within the stabilization window, per service (single-service state)."""


def replica_count(
    *,
    ready: int,
    missing: int,
    current: int,
    total_metric: float,
    target_per_pod: float,
    tolerance: float,
) -> int:
    """The replica calculator (`calcPlainMetricReplicas`) for a Pods metric.

    `missing` pods exist but report no metric yet (still starting): on a scale-up they count as 0,
    on a scale-down as exactly on target, and a result that would flip direction keeps the scale.
    """
    if ready <= 0:
        # No ready pod reports a metric: the HPA cannot compute a ratio and keeps the scale.
        return current
    usage_ratio = (total_metric / ready) / target_per_pod
    if missing == 0:
        if abs(1.0 - usage_ratio) <= tolerance:
            return current
        return math.ceil(usage_ratio * ready)
    total = total_metric + (missing * target_per_pod if usage_ratio < 1.0 else 0.0)
    pods = ready + missing
    new_ratio = total / (pods * target_per_pod)
    if (
        abs(1.0 - new_ratio) <= tolerance
        or (usage_ratio < 1.0 < new_ratio)
        or (usage_ratio > 1.0 > new_ratio)
    ):
        return current
    new_replicas = math.ceil(new_ratio * pods)
    if (new_ratio < 1.0 and new_replicas > current) or (new_ratio > 1.0 and new_replicas < current):
        return current
    return new_replicas


@dataclass(frozen=True, slots=True)
class HpaPolicy:
    """Kubernetes HPA for every model service in the snapshot."""

    settings: HpaSettings = HpaSettings()

    @property
    def name(self) -> str:
        return "hpa"

    def initial_state(self) -> dict[str, HpaState]:
        return {}

    def decide(
        self, snapshot: cluster.ClusterSnapshot, state: dict[str, HpaState], now: float
    ) -> decisions.Decision[dict[str, HpaState]]:
        s = self.settings
        out: list[actions.Action] = []
        new_state = dict(state)
        for svc in snapshot.services:
            st = state.get(svc.key, HpaState())
            if now - st.last_sync < s.sync_period_s - 1e-9:
                continue
            demand = snapshot.demand.get(svc.key)
            current_rps = demand.last() if demand is not None else None
            if current_rps is None or math.isnan(current_rps):
                new_state[svc.key] = HpaState(last_sync=now, recommendations=st.recommendations)
                continue
            target = s.target_utilization * svc.capacity_rps
            raw = replica_count(
                ready=svc.ready_replicas,
                missing=max(0, svc.replicas - svc.ready_replicas),
                current=svc.replicas,
                total_metric=current_rps,
                target_per_pod=target,
                tolerance=s.tolerance,
            )
            lo, hi = max(1, svc.min_replicas), svc.max_replicas
            raw = min(max(raw, lo), hi)
            window = (
                *((t, r) for t, r in st.recommendations if t > now - s.downscale_stabilization_s),
                (now, raw),
            )
            desired = raw
            if raw < svc.replicas:
                desired = min(svc.replicas, max(r for _, r in window))
            if desired > svc.replicas:
                limit = max(
                    math.floor(svc.replicas * (1 + s.scale_up_percent / 100.0)),
                    svc.replicas + s.scale_up_pods,
                )
                desired = min(desired, limit)
            new_state[svc.key] = HpaState(last_sync=now, recommendations=window)
            if desired != svc.replicas:
                out.append(
                    actions.Scale(
                        service=svc.key,
                        replicas=desired,
                        current=svc.replicas,
                        reason=(
                            f"HPA: {current_rps:.2f} req/s over {svc.ready_replicas} ready pods "
                            f"vs target {target:.2f} req/s per pod"
                        ),
                        evidence={"demand_rps": round(current_rps, 4), "target_per_pod": target},
                        policy=self.name,
                    )
                )
        return decisions.Decision(actions=tuple(out), state=new_state)

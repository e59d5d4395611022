"""The live idle-GPU family: a model service whose GPUs sit idle is scaled to zero, or, when its
minimum forbids that, a person is told what it costs.

Reads, from the snapshot only: the managed services and their running pods, each pod's GPUs
(the indices kopilot bound it to, else every GPU of its node when only that service's pods hold
GPUs there), the dcgm-exporter streams `gpu/<node>/<gpu>/utilization` (0..1, docs/signals.md),
and the service's request rate when known (its demand series, `pod/<ns>/<pod>/requests_per_s`).

A service is idle when every GPU it holds has stayed below `threshold` for at least `idle_for_s`
up to now and it served no request in that time. Then:
- `min_replicas == 0`: a `Scale` to 0 (the scaling family brings it back when demand returns);
- otherwise: a `Recommend` (replicas -> 0) on the service, at most once per `remind_s`.
The evidence says how long it has been idle, the GPU-hours held idle and what they cost
(`prices.PriceBook`, the same book `kopilot advise` uses).

Not judged, and said once per node (an `Alert`): a service on a node with no GPU metrics. Not
judged silently: a service whose pods' GPUs cannot be told apart from another service's.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kopilot.cost import prices
from kopilot.model import actions, cluster, decisions, errors, series

POLICY = "cost/idle-gpus"


@dataclass(frozen=True, slots=True, kw_only=True)
class IdleState:
    told: frozenset[str] = frozenset()
    """Nodes already reported as having no GPU metrics."""
    reminded: Mapping[str, float] = field(default_factory=dict)
    """Service -> when its last Recommend was proposed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Idle:
    """What one idle service holds and wastes."""

    service: str
    idle_s: float
    gpus: float
    gpu_hours: float
    cost: float


def _gpu_streams(metrics: Mapping[str, series.Series]) -> dict[str, dict[int, series.Series]]:
    out: dict[str, dict[int, series.Series]] = defaultdict(dict)
    for key, s in metrics.items():
        parts = key.split("/")
        if len(parts) == 4 and parts[0] == "gpu" and parts[3] == "utilization":
            with contextlib.suppress(ValueError):  # a GPU that is not a number: not ours
                out[parts[1]][int(parts[2])] = s
    return out


def idle_for(s: series.Series, *, threshold: float, now: float, stale_s: float) -> float:
    """Seconds this stream has been below `threshold` up to `now` (0 when busy, or too old)."""
    ok = np.isfinite(s.values)
    t, v = s.times[ok], s.values[ok]
    if len(t) == 0 or now - float(t[-1]) > stale_s:
        return 0.0
    busy = np.flatnonzero(v >= threshold)
    if len(busy) and busy[-1] == len(v) - 1:
        return 0.0
    since = float(t[busy[-1] + 1]) if len(busy) else float(t[0])
    return max(0.0, now - since)


def _served_since(s: series.Series | None, start: float) -> bool:
    if s is None:
        return False
    recent = s.since(start).values
    recent = recent[np.isfinite(recent)]
    return bool(len(recent) and float(np.max(recent)) > 0.0)


def _uses_gpu(pod: cluster.Pod) -> bool:
    return pod.request.wants_gpu


@dataclass(frozen=True, slots=True)
class IdlePolicy:
    """Scale idle GPU services to zero, or recommend it (module docstring)."""

    threshold: float = 0.05
    idle_for_s: float = 3600.0
    remind_s: float = 6 * 3600.0
    stale_s: float = 300.0
    book: prices.PriceBook = field(default_factory=prices.PriceBook)
    policy: str = POLICY

    @property
    def name(self) -> str:
        return self.policy

    def initial_state(self) -> IdleState:
        return IdleState()

    def decide(
        self, snapshot: cluster.ClusterSnapshot, prior: IdleState, now: float
    ) -> decisions.Decision[IdleState]:
        out: list[actions.Action] = []
        told = set(prior.told)
        reminded = dict(prior.reminded)
        streams = _gpu_streams(snapshot.metrics)
        gpu_pods: dict[str, list[cluster.Pod]] = defaultdict(list)
        by_service: dict[str, list[cluster.Pod]] = defaultdict(list)
        for pod in snapshot.pods:
            if pod.node and pod.phase is cluster.PodPhase.RUNNING and _uses_gpu(pod):
                gpu_pods[pod.node].append(pod)
                if pod.service:
                    by_service[pod.service].append(pod)
        models = {
            n.name: n.gpu_model or n.labels.get("nvidia.com/gpu.product") for n in snapshot.nodes
        }
        for svc in sorted(snapshot.services, key=lambda s: s.key):
            mine = by_service.get(svc.key, [])
            if not mine or svc.replicas <= 0:
                continue
            blind = sorted({p.node for p in mine if p.node and p.node not in streams})
            for node in blind:
                if node not in told:
                    told.add(node)
                    out.append(self._no_metrics(node, svc.key))
            if blind:
                continue
            found = self._judge(
                svc,
                mine=mine,
                gpu_pods=gpu_pods,
                streams=streams,
                models=models,
                snapshot=snapshot,
                now=now,
            )
            if found is None or found.idle_s < self.idle_for_s:
                continue
            if svc.min_replicas == 0:
                out.append(self._scale(svc, found))
            elif now - reminded.get(svc.key, -np.inf) >= self.remind_s:
                reminded[svc.key] = now
                out.append(self._recommend(svc, found))
        live = {s.key for s in snapshot.services}
        state = IdleState(
            told=frozenset(told), reminded={k: v for k, v in reminded.items() if k in live}
        )
        return decisions.Decision(actions=tuple(out), state=state)

    def _judge(
        self,
        svc: cluster.ModelService,
        *,
        mine: Sequence[cluster.Pod],
        gpu_pods: Mapping[str, Sequence[cluster.Pod]],
        streams: Mapping[str, Mapping[int, series.Series]],
        models: Mapping[str, str | None],
        snapshot: cluster.ClusterSnapshot,
        now: float,
    ) -> Idle | None:
        idle_s = np.inf
        held = 0.0
        cost_per_hour = 0.0
        for pod in mine:
            assert pod.node is not None
            on_node = streams[pod.node]
            if pod.gpu_indices:
                chosen = [on_node[i] for i in pod.gpu_indices if i in on_node]
            elif all(p.service == svc.key for p in gpu_pods[pod.node]):
                chosen = list(on_node.values())
            else:
                return None  # shares the node's GPUs with another service: cannot tell whose
            if not chosen:
                return None
            for s in chosen:
                idle_s = min(
                    idle_s, idle_for(s, threshold=self.threshold, now=now, stale_s=self.stale_s)
                )
            model = models.get(pod.node)
            try:
                share = prices.gpu_share(pod.request, model=model)
            except errors.InvalidInputError:
                return None  # a MIG profile kopilot cannot price (say a +me one): not judged
            held += share
            cost_per_hour += share * self.book.gpu_price(model)
            rate = snapshot.metrics.get(f"pod/{pod.namespace}/{pod.name}/requests_per_s")
            if _served_since(rate, now - float(idle_s)):
                return None
        if not np.isfinite(idle_s) or _served_since(snapshot.demand.get(svc.key), now - idle_s):
            return None
        hours = float(idle_s) / 3600.0
        return Idle(
            service=svc.key,
            idle_s=float(idle_s),
            gpus=held,
            gpu_hours=hours * held,
            cost=hours * cost_per_hour,
        )

    def _evidence(self, found: Idle) -> dict[str, float | int | str]:
        return {
            "idle_s": round(found.idle_s, 1),
            "gpus": round(found.gpus, 3),
            "gpu_hours": round(found.gpu_hours, 3),
            "cost": round(found.cost, 2),
            "currency": self.book.currency,
            "threshold": self.threshold,
        }

    def _why(self, found: Idle) -> str:
        return (
            f"its {found.gpus:g} GPU(s) stayed below {self.threshold:.0%} busy and it served no "
            f"request for {found.idle_s / 3600:.1f} h: {found.gpu_hours:.2f} GPU-hours held idle, "
            f"{found.cost:.2f} {self.book.currency}"
        )

    def _scale(self, svc: cluster.ModelService, found: Idle) -> actions.Scale:
        return actions.Scale(
            service=svc.key,
            replicas=0,
            current=svc.replicas,
            reason=f"idle: {self._why(found)}; scaled to zero (min replicas 0)",
            evidence=self._evidence(found),
            policy=self.policy,
        )

    def _recommend(self, svc: cluster.ModelService, found: Idle) -> actions.Recommend:
        return actions.Recommend(
            subject=f"service/{svc.key}",
            resource="replicas",
            current=svc.replicas,
            recommended=0,
            reason=(
                f"idle: {self._why(found)}; its min replicas ({svc.min_replicas}) keeps kopilot "
                "from scaling it to zero: lower it to 0 to let kopilot do so"
            ),
            evidence=self._evidence(found),
            policy=self.policy,
        )

    def _no_metrics(self, node: str, service: str) -> actions.Alert:
        return actions.Alert(
            subject=f"node/{node}",
            severity=actions.Severity.INFO,
            summary="no GPU metrics",
            reason=(
                f"no dcgm-exporter GPU utilization series for node {node} (gpu/{node}/*/"
                f"utilization); idle detection skips the services on it ({service}). Is "
                "dcgm-exporter running there and scraped?"
            ),
            policy=self.policy,
        )

"""KEDA's scaling behaviour as a baseline policy: polling, activation to/from zero, cooldown.

KEDA (keda.sh, `ScaledObject` defaults) polls its scaler every `pollingInterval` (30 s). While a
workload is at zero, a poll that finds the metric above `activationThreshold` (0) scales it to one
replica; from one replica up, the HPA KEDA creates scales on the same metric (AverageValue target:
per-pod requests/s). A workload whose metric has not been active for `cooldownPeriod` (300 s) is
scaled back to zero (when `minReplicaCount` is 0). The HPA part reuses `kopilot.scaling.hpa`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kopilot.model import actions, cluster, decisions
from kopilot.scaling import hpa


@dataclass(frozen=True, slots=True, kw_only=True)
class KedaSettings:
    polling_interval_s: float = 30.0
    cooldown_period_s: float = 300.0
    activation_threshold: float = 0.0
    hpa: hpa.HpaSettings = field(default_factory=hpa.HpaSettings)


@dataclass(frozen=True, slots=True, kw_only=True)
class KedaState:
    last_poll: float = -math.inf
    last_active: float = -math.inf
    hpa: dict[str, hpa.HpaState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KedaPolicy:
    """KEDA-style scaling of every model service: activation from zero, HPA above one."""

    settings: KedaSettings = KedaSettings()
    name: str = "keda"

    def initial_state(self) -> dict[str, KedaState]:
        return {}

    def decide(
        self, snapshot: cluster.ClusterSnapshot, state: dict[str, KedaState], now: float
    ) -> decisions.Decision[dict[str, KedaState]]:
        s = self.settings
        inner = hpa.HpaPolicy(settings=s.hpa)
        out: list[actions.Action] = []
        new_state = dict(state)
        for svc in snapshot.services:
            st = state.get(svc.key, KedaState())
            demand = snapshot.demand.get(svc.key)
            metric = demand.last() if demand is not None else None
            polled = now - st.last_poll >= s.polling_interval_s - 1e-9
            last_poll, last_active = st.last_poll, st.last_active
            if polled:
                last_poll = now
                # A missing or NaN metric is not "inactive": KEDA keeps the scale on scaler errors.
                if metric is None or math.isnan(metric) or metric > s.activation_threshold:
                    last_active = now
            hpa_state = st.hpa
            if svc.replicas == 0:
                if polled and last_active == now:
                    out.append(
                        _scale(
                            svc,
                            max(1, svc.min_replicas),
                            f"KEDA: activated ({metric} req/s > {s.activation_threshold})",
                            self.name,
                        )
                    )
            elif polled and svc.min_replicas == 0 and now - last_active >= s.cooldown_period_s:
                out.append(
                    _scale(
                        svc,
                        0,
                        f"KEDA: inactive for {now - last_active:.0f} s >= cooldown {s.cooldown_period_s:.0f} s",
                        self.name,
                    )
                )
            else:
                one = cluster.ClusterSnapshot(
                    time=snapshot.time,
                    services=(svc,),
                    demand={svc.key: demand} if demand is not None else {},
                )
                decision = inner.decide(one, hpa_state, now)
                hpa_state = decision.state
                out.extend(
                    actions.Scale(
                        service=a.service,
                        replicas=a.replicas,
                        current=a.current,
                        reason=f"KEDA via HPA: {a.reason}",
                        evidence=a.evidence,
                        policy=self.name,
                    )
                    for a in decision.actions
                    if isinstance(a, actions.Scale)
                )
            new_state[svc.key] = KedaState(
                last_poll=last_poll, last_active=last_active, hpa=hpa_state
            )
        return decisions.Decision(actions=tuple(out), state=new_state)


def _scale(svc: cluster.ModelService, replicas: int, reason: str, policy: str) -> actions.Scale:
    return actions.Scale(
        service=svc.key, replicas=replicas, current=svc.replicas, reason=reason, policy=policy
    )

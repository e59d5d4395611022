"""Knative's Pod Autoscaler (KPA) as a baseline policy.

Follows knative/serving `pkg/autoscaler/scaling/autoscaler.go` with its defaults:

- the metric (requests/s here) is averaged over a 60 s stable window and a 6 s panic window
  (10 % of the stable window); with samples coarser than the window, the latest sample is used;
- desired pods = ceil(average / target per pod), target = capacity x 70 % utilisation;
- panic mode starts when the panic-window demand needs >= 200 % of the ready pods, and while in
  panic the scale never goes down; it ends a stable window after the last panic trigger;
- at most 1000x scale-up and 2x scale-down per decision (max-scale-up/down-rate);
- scale to zero after the stable window saw no traffic plus the 30 s scale-to-zero grace period;
  a request arriving at zero activates it at once (the activator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kopilot.model import actions, cluster, decisions, series


@dataclass(frozen=True, slots=True, kw_only=True)
class KpaSettings:
    target_utilization: float = 0.7
    stable_window_s: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_to_zero_grace_s: float = 30.0
    tick_s: float = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class KpaState:
    last_tick: float = -math.inf
    panic_since: float | None = None
    max_panic_pods: int = 0
    zero_since: float | None = None
    """When the stable window first averaged zero demand (for scale to zero)."""


def _window_mean(history: series.Series, now: float, window: float) -> float | None:
    recent = history.since(now - window)
    vals = recent.values[np.isfinite(recent.values)]
    if vals.size:
        return float(vals.mean())
    finite = history.values[np.isfinite(history.values)]
    return float(finite[-1]) if finite.size else None


@dataclass(frozen=True, slots=True)
class KpaPolicy:
    settings: KpaSettings = KpaSettings()
    name: str = "kpa"

    def initial_state(self) -> dict[str, KpaState]:
        return {}

    def decide(
        self, snapshot: cluster.ClusterSnapshot, state: dict[str, KpaState], now: float
    ) -> decisions.Decision[dict[str, KpaState]]:
        s = self.settings
        out: list[actions.Action] = []
        new_state = dict(state)
        for svc in snapshot.services:
            st = state.get(svc.key, KpaState())
            if now - st.last_tick < s.tick_s - 1e-9:
                continue
            history = snapshot.demand.get(svc.key)
            stable = _window_mean(history, now, s.stable_window_s) if history is not None else None
            panic_w = s.stable_window_s * s.panic_window_percentage / 100.0
            panic = _window_mean(history, now, panic_w) if history is not None else None
            if stable is None or panic is None:
                new_state[svc.key] = KpaState(
                    last_tick=now,
                    panic_since=st.panic_since,
                    max_panic_pods=st.max_panic_pods,
                    zero_since=st.zero_since,
                )
                continue
            per_pod = s.target_utilization * svc.capacity_rps
            desired_stable = math.ceil(stable / per_pod - 1e-9)
            desired_panic = math.ceil(panic / per_pod - 1e-9)
            ready = max(1, svc.ready_replicas)
            panic_since, max_panic = st.panic_since, st.max_panic_pods
            if desired_panic / ready >= s.panic_threshold_percentage / 100.0:
                panic_since = now
                max_panic = max(max_panic, desired_panic)
            elif panic_since is not None and now - panic_since >= s.stable_window_s:
                panic_since, max_panic = None, 0
            desired = desired_stable
            if panic_since is not None:
                max_panic = max(max_panic, desired_panic, svc.replicas)
                desired = max(desired_panic, max_panic)
            up_limit = math.ceil(s.max_scale_up_rate * ready)
            down_limit = math.floor(ready / s.max_scale_down_rate)
            desired = min(max(desired, down_limit), up_limit)
            zero_since = st.zero_since
            zero_since = (now if zero_since is None else zero_since) if stable <= 0 else None
            if desired == 0:
                waited = now - zero_since if zero_since is not None else 0.0
                if waited < s.stable_window_s + s.scale_to_zero_grace_s or svc.min_replicas > 0:
                    desired = max(1, svc.min_replicas) if svc.replicas > 0 else 0
            if svc.replicas == 0 and panic > 0:
                desired = max(desired, 1)  # the activator wakes it at once
            desired = min(max(desired, svc.min_replicas), svc.max_replicas)
            new_state[svc.key] = KpaState(
                last_tick=now,
                panic_since=panic_since,
                max_panic_pods=max_panic,
                zero_since=zero_since,
            )
            if desired != svc.replicas:
                mode = "panic" if panic_since is not None else "stable"
                out.append(
                    actions.Scale(
                        service=svc.key,
                        replicas=desired,
                        current=svc.replicas,
                        reason=(
                            f"KPA ({mode}): {stable:.2f} req/s stable, {panic:.2f} req/s panic "
                            f"vs {per_pod:.2f} req/s per pod"
                        ),
                        evidence={"stable_rps": round(stable, 4), "panic_rps": round(panic, 4)},
                        policy=self.name,
                    )
                )
        return decisions.Decision(actions=tuple(out), state=new_state)

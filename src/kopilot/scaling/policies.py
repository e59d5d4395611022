"""kopilot's first scaling policy: cold-start-aware trend forecasting with a reactive floor.

Replicas are planned for the demand expected when a replica started *now* would be ready:
over (now, now + cold start + margin]. The forecast here is deliberately simple (recent peak,
linear trend and its residual spread); the forecasters in this package replace it. What stays:

- a reactive floor: never fewer replicas than the current load needs;
- scale-up at once, scale-down only after the plan has been lower for a whole window;
- scale to zero only after a long idle stretch (and only if the service allows min 0);
- a data-quality gate: missing, stale or NaN demand history falls back to the reactive rule and
  the action's reason says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kopilot.model import actions, cluster, decisions, series


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictiveSettings:
    target_utilization: float = 0.8
    sync_period_s: float = 15.0
    margin_s: float = 60.0
    lookback_s: float = 900.0
    peak_window_s: float = 300.0
    residual_k: float = 1.5
    """How many residual standard deviations of headroom (a rough upper quantile)."""
    scale_down_window_s: float = 300.0
    idle_to_zero_s: float = 1800.0
    stale_after_s: float = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictiveState:
    last_sync: float = -math.inf
    plans: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Forecast:
    value: float
    method: str
    quality: str
    """"ok", or why the history was not trusted."""


def check_history(history: series.Series | None, now: float, stale_after_s: float) -> str:
    """'ok' or the reason the demand history cannot be trusted for a forecast."""
    if history is None or len(history) == 0:
        return "no demand history"
    last_t = float(history.times[-1])
    if now - last_t > stale_after_s:
        return f"demand history is stale (last sample {now - last_t:.0f} s old)"
    recent = history.values[-min(len(history), 5) :]
    if np.isnan(recent).any():
        return "NaN in recent demand samples"
    if (recent < 0).any() or np.isinf(recent).any():
        return "impossible demand values (negative or infinite)"
    return "ok"


def forecast_peak(
    history: series.Series, now: float, horizon_s: float, settings: PredictiveSettings
) -> Forecast:
    """Upper estimate of demand over (now, now + horizon]."""
    recent = history.since(now - settings.lookback_s)
    ok = ~np.isnan(recent.values)
    t, v = recent.times[ok], recent.values[ok]
    last = float(v[-1])
    peak = float(v[t >= now - settings.peak_window_s].max(initial=last))
    if len(v) < 4:
        return Forecast(value=max(peak, last), method="recent peak", quality="ok")
    slope, intercept = np.polyfit(t - now, v, 1)
    fitted = slope * (t - now) + intercept
    spread = float(np.std(v - fitted))
    ahead = float(intercept + max(0.0, float(slope)) * horizon_s)
    value = max(peak, ahead) + settings.residual_k * spread
    return Forecast(value=value, method="trend + peak", quality="ok")


@dataclass(frozen=True, slots=True)
class PredictivePolicy:
    """Plan replicas for the demand expected when new replicas would be ready."""

    settings: PredictiveSettings = PredictiveSettings()

    @property
    def name(self) -> str:
        return "kopilot"

    def initial_state(self) -> dict[str, PredictiveState]:
        return {}

    def decide(
        self, snapshot: cluster.ClusterSnapshot, state: dict[str, PredictiveState], now: float
    ) -> decisions.Decision[dict[str, PredictiveState]]:
        s = self.settings
        out: list[actions.Action] = []
        new_state = dict(state)
        for svc in snapshot.services:
            st = state.get(svc.key, PredictiveState())
            if now - st.last_sync < s.sync_period_s - 1e-9:
                continue
            per_replica = s.target_utilization * svc.capacity_rps
            history = snapshot.demand.get(svc.key)
            quality = check_history(history, now, s.stale_after_s)
            if quality != "ok" or history is None:
                # Reactive fallback: hold what we have, plus what the last good sample needs.
                last = _last_finite(history)
                need = (
                    svc.replicas
                    if last is None
                    else max(svc.replicas, math.ceil(last / per_replica))
                )
                plan = _clamp(need, svc, allow_zero=False)
                why = f"data-quality gate: {quality}; reactive rule keeps {plan} replicas"
                new_state[svc.key] = PredictiveState(last_sync=now, plans=st.plans)
                if plan != svc.replicas:
                    out.append(_scale(svc, plan, why, {"quality": quality}, self.name))
                continue
            horizon = svc.cold_start_s + s.margin_s
            fc = forecast_peak(history, now, horizon, s)
            current = float(history.values[-1])
            floor = math.ceil(current / per_replica) if current > 0 else 0
            planned = max(floor, math.ceil(fc.value / per_replica))
            window = tuple((t, p) for t, p in st.plans if t > now - s.scale_down_window_s)
            window += ((now, planned),)
            idle_since = _idle_since(history)
            allow_zero = idle_since is not None and now - idle_since >= s.idle_to_zero_s
            if planned == 0 and not allow_zero:
                planned = max(1, svc.min_replicas)
            desired = planned
            if planned < svc.replicas:
                desired = min(svc.replicas, max(p for _, p in window))
            desired = _clamp(desired, svc, allow_zero=allow_zero)
            new_state[svc.key] = PredictiveState(last_sync=now, plans=window)
            if desired != svc.replicas:
                why = (
                    f"forecast {fc.value:.2f} req/s within {horizon:.0f} s (cold start "
                    f"{svc.cold_start_s:.0f} s + margin) needs {planned} replicas at "
                    f"{per_replica:.2f} req/s each; now {current:.2f} req/s"
                )
                if desired == 0:
                    why = f"idle for {now - (idle_since or now):.0f} s: scale to zero"
                evidence = {"forecast_rps": round(fc.value, 4), "current_rps": round(current, 4)}
                out.append(_scale(svc, desired, why, evidence, self.name))
        return decisions.Decision(actions=tuple(out), state=new_state)


def _last_finite(history: series.Series | None) -> float | None:
    if history is None:
        return None
    finite = history.values[np.isfinite(history.values)]
    return float(finite[-1]) if len(finite) else None


def _idle_since(history: series.Series) -> float | None:
    """When demand last became zero and stayed zero; None if it is not zero now."""
    nonzero = np.flatnonzero(history.values > 0)
    if len(nonzero) == len(history):
        return None
    if len(nonzero) == 0:
        return float(history.times[0])
    i = int(nonzero[-1]) + 1
    return float(history.times[i]) if i < len(history) else None


def _clamp(replicas: int, svc: cluster.ModelService, *, allow_zero: bool) -> int:
    lo = svc.min_replicas if allow_zero else max(1, svc.min_replicas)
    return min(max(replicas, lo), svc.max_replicas)


def _scale(
    svc: cluster.ModelService, replicas: int, reason: str, evidence: actions.Evidence, policy: str
) -> actions.Scale:
    return actions.Scale(
        service=svc.key,
        replicas=replicas,
        current=svc.replicas,
        reason=reason,
        evidence=evidence,
        policy=policy,
    )

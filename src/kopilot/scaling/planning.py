"""kopilot's forecast-driven, cold-start-aware scaling policy.

Per service, each decision:

1. The data-quality gate (`quality`) checks the recent demand history. If it fails, the reactive
   rule decides (hold, or scale up to what the last good sample needs; never down, never to
   zero) and the action's reason says why.
2. A forecaster is chosen and calibrated by rolling backtest (`forecasting.select`), cached in the
   state and refitted every `refit_every_s` (sooner while the history is still short).
3. Replicas needed = the `quantile` of peak demand over (now, now + cold start + one step +
   margin] ÷ per-replica capacity: what a replica started now must be ready for. Scale up at once.
4. Reactive floor: never fewer replicas than the current load needs (with 30 % spare room while
   the history is under two days, before any daily pattern can be known); and when the load is
   above the forecast, or above what the last decision planned for this moment (a surprise: a
   burst the history did not show; a forecast that follows the load would hide it), plan for the
   burst to go on.
5. Scale down only when the forecast says it is safe over a longer window (`hold_s` more), never
   below what the scale-up window needs, and never below what the peak of the last
   `stabilize_s` needs (a load that dips for a minute and jumps back finds its replicas).
6. Recurring rises: if demand rose at this clock time (give or take `recurring_jitter_s`) on
   enough of the past week's days (a daily job; a quiet weekend day does not hide it), the same
   rise is planned for, on both the scale-up and the scale-down window.
7. Scale to zero when the forecast peak over the long window is idle (and the service allows it);
   the same forecast pre-warms replicas a cold start ahead of the demand's return.

Pure: no I/O, no clock; fits are cached in the returned state.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from kopilot.model import actions, cluster, decisions, series
from kopilot.scaling import forecasters, forecasting, quality

DAY = 86400.0
RISE_TOLERANCE = 0.1
"""A recurring rise counts only above this (relative): smaller ones the forecast's error covers."""
RECURRING_SHARE = 0.3
"""A recurring rise must show on this share of the past week's days (and on `recurring_days`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSettings:
    quantile: float = 0.95
    """The forecast quantile of peak demand that replicas are planned for (with `headroom`
    None), and the level forecasters are compared at."""
    headroom: float | None = 0.4
    """Plan at the highest quantile whose backtest plans average at most this much above the
    demand that came (see `forecasting.select`); None plans at `quantile` always."""
    margin_s: float = 0.0
    """Extra lead time beyond the cold start and one sampling step (the cold start the service
    declares is already a high quantile of its starts)."""
    hold_s: float = 300.0
    """Scale down only if the forecast allows it for this much longer than the scale-up window."""
    surge: float | None = 0.25
    """When the current load is above the forecast's peak quantile, or above the peak the last
    decision planned for its scale-up window while that window lasts (a surprise), plan for
    the largest of load + its last rise, load x (1 + surge), and the load growing at its last
    step's rate over the scale-up window (capped at the highest load in the history) until the
    forecast catches up; None: only the plain reactive floor."""
    recurring_days: int = 3
    """Recurring-rise guard (`recurring_peak`): if demand rose at this time of day on at least this
    many of the past week's days, and on `recurring_share` of them (window peak after vs. before
    the same clock time), plan for the rise it reached on that many days on top of the recent
    peak; it needs this many days of history; 0 turns it off."""
    stabilize_s: float = 300.0
    """Scale down no lower than the peak demand of the last this many seconds needs (as HPA's
    scale-down stabilisation window): a load that dips and jumps back finds its replicas."""
    recurring_share: float = RECURRING_SHARE
    recurring_min_days: int = 2
    """With fewer than `recurring_days` days of history (but at least this many), the guard asks
    for the rise on every day it has: a daily jump shows on day two, not only on day three."""
    recurring_jitter_s: float = 120.0
    """A recurring rise may come this much earlier or later in the day than on past days."""
    spare: float = 0.0
    """Reactive floor with spare room: never fewer replicas than the current load x (1 + spare)
    needs (the forecast may ask for more, never for less)."""
    young_spare: float = 0.3
    """`spare` while the history is shorter than `young_s`: before two days of history no daily
    pattern can be learnt, and a jump the history has not shown can come at any time."""
    young_s: float = 2 * DAY
    refit_every_s: float = 6 * 3600.0
    max_history_s: float = 14 * 86400.0
    idle_fraction: float = 0.01
    """Forecast demand below this fraction of one replica's capacity counts as idle."""
    fallback_utilization: float = 0.7
    """Without a forecast (too little history), scale like an HPA targeting this utilisation."""
    gate: quality.QualitySettings = field(default_factory=quality.QualitySettings)
    candidates: tuple[forecasters.Forecaster, ...] = forecasters.ALL


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceState:
    fitted: forecasting.Fitted | None = None
    fitted_span_s: float = 0.0
    """How much history the cached fit saw."""
    attempted_at: float = -math.inf
    planned_peak: float | None = None
    """The peak demand the last decision planned for over its scale-up window ..."""
    planned_until: float = -math.inf
    """... and the end of that window: a load above `planned_peak` before then is a surprise."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The replica count one service should have now, and why."""

    replicas: int
    reason: str
    evidence: Mapping[str, float | int | str]
    gated: bool = False


def _last_finite(history: series.Series | None) -> float | None:
    if history is None or len(history) == 0:
        return None
    tail = history.values[-50:]
    ok = tail[np.isfinite(tail) & (tail >= 0)]
    return float(ok[-1]) if ok.size else None


def _previous_finite(history: series.Series) -> float | None:
    tail = history.values[-50:-1]
    ok = tail[np.isfinite(tail) & (tail >= 0)]
    return float(ok[-1]) if ok.size else None


def _window_max(history: series.Series, start: float, end: float) -> float | None:
    """The largest finite sample in [start, end)."""
    t = history.times
    lo = int(np.searchsorted(t, start, side="left"))
    hi = int(np.searchsorted(t, end, side="left"))
    vals = history.values[lo:hi]
    vals = vals[np.isfinite(vals)]
    return float(vals.max()) if vals.size else None


def recurring_peak(
    history: series.Series,
    now: float,
    window_s: float,
    days: int,
    tolerance: float = 0.0,
    *,
    before_s: float | None = None,
    look_back_days: int = 7,
    share: float = RECURRING_SHARE,
    jitter_s: float = 0.0,
    step: float = 0.0,
    min_days: int | None = None,
) -> tuple[float, float] | None:
    """(planned peak, rise) from the rise demand showed at this clock time on past days.

    For each past day k (up to `look_back_days`, at least `days` of them, or `min_days` while
    there are no more), the rise is the peak over [t, t + window_s) divided by the peak over
    [t - before_s, t), at t = now - k days: the sample at t is the bucket starting at t, part of
    what was to come, as the one at `now` is (`before_s` defaults to `window_s`). If demand rose
    by more than `tolerance` on at least `share` of those days (on all of them when there are
    only `days` or fewer: a daily jump shows on day two already), the rise it reached on that
    many days is expected now: the recent peak (over `before_s`) times that rise, but no more
    than the highest peak the window reached on those days. Noise seldom rises on most days at
    the same clock time; a daily job does, and a weekly pattern (no job on weekends) does not
    hide it. A past day counts once its before-window is in the history (jittered clock times
    outside it are skipped).
    None when there is no such rise or too little history.
    """
    before_s = window_s if before_s is None else before_s
    if days <= 0:
        return None
    recent = _window_max(history, now - before_s, now)
    if recent is None:
        return None
    first = float(history.times[0])
    n_days = 0
    while n_days < max(days, look_back_days) and first <= (now - (n_days + 1) * DAY - before_s):
        n_days += 1
    if n_days < (days if min_days is None else min(days, max(1, min_days))):
        return None
    reach = round(jitter_s / step) if step > 0 else 0
    # Clock times (days x offsets), and the three bounds of each one's before and after windows,
    # found with one search; the window maxima with one reduceat over the span they cover.
    at = (now - np.arange(1, n_days + 1)[:, None] * DAY) + np.arange(-reach, reach + 1) * step
    lo, mid, hi = np.searchsorted(history.times, (at - before_s, at, at + window_s), side="left")
    base = int(lo.min())
    span = history.values[base : int(hi.max())]
    vals = np.append(np.where(np.isfinite(span), span, -np.inf), -np.inf)
    before = np.maximum.reduceat(vals, np.stack((lo - base, mid - base), -1).ravel())[0::2]
    after = np.maximum.reduceat(vals, np.stack((mid - base, hi - base), -1).ravel())[0::2]
    before = np.where(mid.ravel() > lo.ravel(), before, -np.inf).reshape(at.shape)
    after = np.where(hi.ravel() > mid.ravel(), after, -np.inf).reshape(at.shape)
    ok = (before > 0.0) & np.isfinite(before) & np.isfinite(after)
    if not ok.any(axis=1).all():
        return None
    ratios = np.where(ok, after / np.where(ok, before, 1.0), -np.inf)
    rises = ratios.max(axis=1).tolist()
    highest = float(np.where(ok, after, 0.0).max())
    need = min(len(rises), max(days, math.ceil(share * len(rises))))
    rise = sorted(rises, reverse=True)[need - 1]
    # Never above the highest the window reached on those days: a rise measured from a near-zero
    # level (a spike out of silence) would otherwise multiply into a runaway plan.
    return (min(recent * rise, highest), rise) if rise > 1.0 + tolerance else None


def _clamp(replicas: int, svc: cluster.ModelService) -> int:
    return min(max(replicas, svc.min_replicas), svc.max_replicas)


def _needed(rps: float, capacity: float) -> int:
    return max(0, math.ceil(rps / capacity - 1e-9))


def _needs_refit(
    st: ServiceState,
    history: series.Series,
    *,
    step: float,
    horizon: int,
    now: float,
    s: PlanSettings,
) -> bool:
    fitted = st.fitted
    if fitted is None:
        # Not enough history last time: try again once it has grown by a quarter (or 10 steps).
        span = float(history.times[-1] - history.times[0])
        return span >= st.fitted_span_s * 1.25 or span - st.fitted_span_s >= 10 * step
    if fitted.horizon != horizon or not math.isclose(fitted.step, step, rel_tol=0.01):
        return True
    if now - fitted.fitted_at >= s.refit_every_s:
        return True
    span = min(s.max_history_s, float(history.times[-1] - history.times[0]))
    return span >= 1.5 * st.fitted_span_s


def plan_service(
    svc: cluster.ModelService,
    history: series.Series | None,
    st: ServiceState,
    now: float,
    s: PlanSettings,
) -> tuple[Plan, ServiceState]:
    """The plan for one service, and its next state."""
    cap = svc.capacity_rps
    step = forecasting.infer_step(history) if history is not None else None
    verdict = quality.check(history, now, step, s.gate)
    current = _last_finite(history)
    floor = _needed(current, cap) if current is not None else 0
    if not verdict.ok or history is None or step is None:
        if verdict.too_short and current is not None:
            # Good samples, just few: as the no-forecast rule below, room for the load to grow.
            floor = max(floor, _needed(current / s.fallback_utilization, cap))
        target = _clamp(max(svc.replicas, floor), svc)
        reason = (
            f"data-quality gate: {verdict.summary}; reactive fallback holds or scales up only "
            f"({target} replicas"
            + (f", last good demand {current:.2f} req/s)" if current is not None else ")")
        )
        gate: dict[str, float | int | str] = {"gate": verdict.summary, "floor": floor}
        return Plan(replicas=target, reason=reason, evidence=gate, gated=True), st

    lead_s = svc.cold_start_s + step + s.margin_s
    horizon = max(1, math.ceil(lead_s / step))
    horizon_down = horizon + max(0, math.ceil(s.hold_s / step))
    if _needs_refit(st, history, step=step, horizon=horizon, now=now, s=s):
        fitted = forecasting.select(
            history,
            step=step,
            horizon=horizon,
            quantile=s.quantile,
            now=now,
            candidates=s.candidates,
            max_history_s=s.max_history_s,
            headroom=s.headroom,
            also=(horizon_down,),
        )
        span = min(s.max_history_s, float(history.times[-1] - history.times[0]))
        st = dataclasses.replace(st, fitted=fitted, fitted_span_s=span, attempted_at=now)
    fitted = st.fitted
    if fitted is None:
        need = _needed((current or 0.0) / s.fallback_utilization, cap)
        target = _clamp(max(need, 1 if svc.replicas > 0 or floor > 0 else 0), svc)
        reason = (
            f"not enough demand history to forecast yet ({len(history)} samples); reactive rule: "
            f"{current or 0.0:.2f} req/s at {s.fallback_utilization:.0%} of "
            f"{cap:g} req/s per replica -> {target}"
        )
        return Plan(replicas=target, reason=reason, evidence={"floor": floor}), st

    lookback = max(fitted.model.lookback, 1) + 2
    grid = forecasters.regular(history, step, since=now - lookback * step - step / 2)
    (point, peak), (_, peak_down) = fitted.peaks(grid, (horizon, horizon_down))

    def recurring(window_steps: int) -> tuple[float, float] | None:
        return recurring_peak(
            history,
            now,
            window_steps * step,
            s.recurring_days,
            RISE_TOLERANCE,
            before_s=horizon * step,
            share=s.recurring_share,
            jitter_s=s.recurring_jitter_s,
            step=step,
            min_days=s.recurring_min_days,
        )

    recurring_up, recurring_down = recurring(horizon), recurring(horizon_down)
    if recurring_up is not None:
        peak = max(peak, recurring_up[0])
    if recurring_down is not None:
        peak_down = max(peak_down, recurring_down[0])
    idle = s.idle_fraction * cap
    need_up = 0 if peak < idle else _needed(peak, cap)
    need_down = 0 if peak_down < idle and (current or 0.0) < idle else _needed(peak_down, cap)
    surge = 0
    # A surprise: the load broke through the peak forecast now, or the one the last decision
    # planned for this moment.
    broken: float | None = None
    if current is not None and current > peak:
        broken = peak
    elif (
        current is not None
        and st.planned_peak is not None
        and now <= st.planned_until
        and current > st.planned_peak
    ):
        broken = st.planned_peak
    if current is not None and broken is not None and s.surge is not None:
        # The forecast was surprised: plan for the surge to go on (its last rise again, its
        # last growth rate, or `surge` more), not just for the load already seen.
        previous = _previous_finite(history) or current
        rise = max(0.0, current - previous)
        want = max(current + rise, current * (1.0 + s.surge))
        if previous > 0.0 and current > previous:
            # The last step's growth rate, kept up over the window the plan covers, but never
            # above the highest load the history holds (a spike out of near-silence would
            # otherwise plan for many times the service's record).
            record = _window_max(history, -math.inf, math.inf) or current
            want = max(want, min(current * (current / previous) ** horizon, record))
        surge = _needed(want, cap)
    spare = s.spare
    if float(history.times[-1] - history.times[0]) < s.young_s:
        spare = max(spare, s.young_spare)
    if current is not None and spare > 0.0:
        floor = max(floor, _needed(current * (1.0 + spare), cap))
    floor = max(floor, surge)
    up = max(need_up, floor)
    # The scale-down window contains the scale-up window: never drop below what the latter needs.
    down = max(need_down, up)
    if s.stabilize_s > 0.0:
        recent_peak = _window_max(history, now - s.stabilize_s, now)
        if recent_peak is not None and recent_peak >= idle:
            down = max(down, _needed(recent_peak, cap))
    q = f"p{fitted.quantile * 100:g}"
    where = f"{fitted.name}, {fitted.period.label} period"
    if up > svc.replicas:
        target = up
        why = (
            f"forecast {q} peak demand {peak:.2f} req/s over the next {horizon * step:.0f} s "
            f"(cold start {svc.cold_start_s:.0f} s + step + margin; {where}) needs {need_up} "
            f"replicas of {cap:g} req/s"
        )
        if floor > need_up:
            why = f"reactive floor: current load {current:.2f} req/s needs {floor} replicas"
            if spare > 0.0:
                young = " (under two days of history)" if spare > s.spare else ""
                why += f" with {spare:.0%} spare room{young}"
            if surge and surge == floor:
                why = (
                    f"surge: current load {current:.2f} req/s is above the forecast {q} peak "
                    f"{broken:.2f} req/s ({where}); planning for it to go on rising: {surge} "
                    "replicas"
                )
    elif down < svc.replicas:
        target = down
        why = (
            f"forecast {q} peak demand over the next {horizon_down * step:.0f} s is "
            f"{peak_down:.2f} req/s ({where}): {down} replicas are enough"
        )
        if down == 0:
            why = (
                f"forecast idle over the next {horizon_down * step:.0f} s ({q} peak "
                f"{peak_down:.3f} req/s, {where}): scale to zero"
            )
    else:
        target = svc.replicas
        why = f"forecast {q} peak {peak:.2f} req/s: hold {target} replicas ({where})"
    target = _clamp(target, svc)
    evidence: dict[str, float | int | str] = {
        "forecaster": fitted.name,
        "period": fitted.period.label,
        "quantile": fitted.quantile,
        "forecast_peak_rps": round(peak, 4),
        "forecast_point_rps": round(point, 4),
        "horizon_s": round(horizon * step, 1),
        "current_rps": round(current or 0.0, 4),
        "capacity_rps": cap,
        "floor": floor,
    }
    st = dataclasses.replace(st, planned_peak=peak, planned_until=now + horizon * step)
    return Plan(replicas=target, reason=why, evidence=evidence), st


@dataclass(frozen=True, slots=True)
class ForecastPolicy:
    """Scale every model service in the snapshot ahead of its forecast demand."""

    settings: PlanSettings = PlanSettings()
    name: str = "kopilot"

    def initial_state(self) -> dict[str, ServiceState]:
        return {}

    def decide(
        self, snapshot: cluster.ClusterSnapshot, state: dict[str, ServiceState], now: float
    ) -> decisions.Decision[dict[str, ServiceState]]:
        out: list[actions.Action] = []
        new_state = dict(state)
        for svc in snapshot.services:
            plan, st = plan_service(
                svc,
                snapshot.demand.get(svc.key),
                state.get(svc.key, ServiceState()),
                now,
                self.settings,
            )
            new_state[svc.key] = st
            if plan.replicas != svc.replicas:
                out.append(
                    actions.Scale(
                        service=svc.key,
                        replicas=plan.replicas,
                        current=svc.replicas,
                        reason=plan.reason,
                        evidence=plan.evidence,
                        policy=self.name,
                    )
                )
        return decisions.Decision(actions=tuple(out), state=new_state)

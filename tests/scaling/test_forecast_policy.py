"""kopilot's forecast policy: gate, reactive floor, safe scale-down, scale to zero, pre-warm."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kopilot.model import actions, cluster, series
from kopilot.scaling import forecasters, periods, planning

STEP = 60.0
KEY = "ns/svc"


def _svc(
    replicas: int, *, cap: float = 10.0, cold: float = 45.0, lo: int = 0, hi: int = 100
) -> cluster.ModelService:
    return cluster.ModelService(
        name="svc",
        namespace="ns",
        replicas=replicas,
        ready_replicas=replicas,
        capacity_rps=cap,
        cold_start_s=cold,
        min_replicas=lo,
        max_replicas=hi,
    )


def _snap(
    svc: cluster.ModelService, history: series.Series | None, now: float
) -> cluster.ClusterSnapshot:
    return cluster.ClusterSnapshot(
        time=now, services=(svc,), demand={} if history is None else {KEY: history}
    )


def _decide(
    policy: planning.ForecastPolicy,
    svc: cluster.ModelService,
    history: series.Series | None,
    now: float,
    state: dict[str, planning.ServiceState] | None = None,
) -> tuple[list[actions.Scale], dict[str, planning.ServiceState]]:
    d = policy.decide(
        _snap(svc, history, now), state if state is not None else policy.initial_state(), now
    )
    return [a for a in d.actions if isinstance(a, actions.Scale)], d.state


def _steady(n: int, level: float, seed: int = 0) -> series.Series:
    rng = np.random.default_rng(seed)
    t = np.arange(n) * STEP
    return series.Series.of(t, level + rng.normal(0, level * 0.02, n))


POLICY = planning.ForecastPolicy()
SEASONED = planning.ForecastPolicy(settings=planning.PlanSettings(young_spare=0.0))
"""Without the young-history spare room, so the forecast's own plan shows."""


def test_plans_for_the_forecast_and_says_why() -> None:
    h = _steady(600, 100.0)
    now = float(h.times[-1]) + STEP
    acts, _ = _decide(SEASONED, _svc(1), h, now)
    assert len(acts) == 1
    a = acts[0]
    assert 10 <= a.replicas <= 13  # 100 req/s at 10 req/s per replica, plus a calibrated margin
    assert "forecast p" in a.reason and "peak demand" in a.reason and "cold start 45 s" in a.reason
    assert a.evidence["forecaster"] and a.policy == "kopilot"


def test_young_history_keeps_spare_room() -> None:
    # Ten hours of history: no daily pattern can be known yet, so 30 % room over the last load.
    h = _steady(600, 100.0)
    now = float(h.times[-1]) + STEP
    acts, _ = _decide(POLICY, _svc(1), h, now)
    assert acts[0].replicas >= math.ceil(float(h.values[-1]) * 1.3 / 10.0)
    assert "30% spare room (under two days of history)" in acts[0].reason
    # Past two days of history the room is gone and the forecast plans alone.
    old = _steady(3 * 1440, 100.0)
    acts, _ = _decide(POLICY, _svc(1), old, float(old.times[-1]) + STEP)
    assert 10 <= acts[0].replicas <= 13


def test_reactive_floor_never_below_current_load() -> None:
    h = _steady(600, 10.0)
    v = h.values.copy()
    v[-1] = 300.0  # a sudden burst: the forecast lags, the floor does not
    h2 = series.Series.of(h.times, v)
    acts, _ = _decide(POLICY, _svc(2), h2, float(h.times[-1]) + STEP)
    assert acts and acts[0].replicas >= 30


def test_a_surprising_surge_is_planned_to_go_on() -> None:
    full = _on_off(6)
    end = int(np.searchsorted(full.times, 5 * periods.DAY + 23 * 3600.0))
    v = full.values[:end].copy()
    v[-2], v[-1] = 30.0, 60.0  # at 23:00, when every night so far was idle
    h = series.Series.of(full.times[:end], v)
    acts, _ = _decide(POLICY, _svc(0), h, float(full.times[end]))
    assert acts
    # It doubled in one step: kept up over the two-step window that is 240 req/s, more than
    # the history ever held, so the plan stops at the record (about 106 req/s by day) -> 11.
    record = float(np.nanmax(h.values))
    assert 100.0 < record < 110.0
    assert acts[0].replicas == math.ceil(record / 10.0)
    assert acts[0].reason.startswith("surge: current load 60.00 req/s is above the forecast")


def test_a_load_above_the_last_plan_is_a_surprise_even_if_the_forecast_follows_it() -> None:
    # Persistence forecasts the current load again, so "above today's forecast" never fires for
    # it; the load broke through what the previous decision planned for this moment all the same.
    settings = planning.PlanSettings(young_spare=0.0, candidates=(forecasters.Persistence(),))
    h = _steady(600, 100.0)
    now = float(h.times[-1]) + STEP
    first, st = planning.plan_service(_svc(11), h, planning.ServiceState(), now, settings)
    assert st.planned_peak is not None and st.planned_peak < 150.0
    jumped = series.Series.of(np.append(h.times, now), np.append(h.values, 150.0))
    plan, _ = planning.plan_service(_svc(first.replicas), jumped, st, now + STEP, settings)
    # 150 req/s + its last rise (about 50) = about 200 req/s at 10 req/s per replica
    assert plan.replicas == 20
    assert plan.reason.startswith("surge: current load 150.00 req/s is above the forecast")
    assert f"{st.planned_peak:.2f} req/s" in plan.reason
    # Without the last plan (or once its window is over) only the forecast from now counts.
    fresh = dataclasses.replace(st, planned_peak=None)
    plan, _ = planning.plan_service(_svc(first.replicas), jumped, fresh, now + STEP, settings)
    assert plan.replicas < 20 and not plan.reason.startswith("surge")
    # Had the history once held 500 req/s, the growth (x1.5 a step) would be kept up over the
    # two-step window: 150 x 1.5 x 1.5 = 337.5 req/s -> 34 replicas.
    once = jumped.values.copy()
    once[100] = 500.0
    grown, _ = planning.plan_service(
        _svc(first.replicas), series.Series.of(jumped.times, once), st, now + STEP, settings
    )
    assert grown.replicas == 34
    over = dataclasses.replace(st, planned_until=now)
    late, _ = planning.plan_service(_svc(first.replicas), jumped, over, now + STEP, settings)
    assert late.replicas < 20 and not late.reason.startswith("surge")


def test_scale_down_window_is_calibrated_for_its_own_length() -> None:
    """Noise peaks over a long window are higher than over a short one: the fit knows."""
    h = _steady(3000, 100.0)
    now = float(h.times[-1]) + STEP
    _, state = _decide(POLICY, _svc(12), h, now)
    fitted = state[KEY].fitted
    assert fitted is not None and fitted.by_horizon
    (long_h, (err_long, _)) = next(iter(fitted.by_horizon.items()))
    assert long_h > fitted.horizon
    assert err_long > fitted.peak_error


def _gated(history: series.Series, now: float, svc: cluster.ModelService) -> actions.Scale | None:
    acts, _ = _decide(POLICY, svc, history, now)
    return acts[0] if acts else None


def test_gate_stale_history_holds_and_says_so() -> None:
    h = _steady(600, 5.0)  # would need 1 replica
    now = float(h.times[-1]) + 20 * STEP
    plan, _ = planning.plan_service(
        _svc(8), h, planning.ServiceState(), now, planning.PlanSettings()
    )
    assert plan.gated and plan.replicas == 8
    assert plan.reason.startswith("data-quality gate: stale")


def test_gate_nan_and_negative_values_fall_back_and_scale_up_only() -> None:
    h = _steady(600, 100.0)
    v = h.values.copy()
    v[-3] = np.nan
    v[-2] = -1.0
    now = float(h.times[-1]) + STEP
    a = _gated(series.Series.of(h.times, v), now, _svc(1))
    assert a is not None and a.replicas == math.ceil(v[-1] / 10.0)
    assert "data-quality gate" in a.reason and "NaN/infinite/negative" in a.reason
    none = _gated(series.Series.of(h.times, v), now, _svc(40))
    assert none is None  # never scales down on bad data


def test_gate_flat_line_and_gaps() -> None:
    t = np.arange(600) * STEP
    flat = series.Series.of(t, np.full(600, 42.0))
    plan, _ = planning.plan_service(
        _svc(10), flat, planning.ServiceState(), float(t[-1]) + STEP, planning.PlanSettings()
    )
    assert plan.gated and "flat line" in plan.reason
    keep = np.ones(600, dtype=bool)
    keep[-30:-5] = False
    gappy = series.Series.of(
        t[keep], np.full(int(keep.sum()), 20.0) + np.arange(int(keep.sum())) % 3
    )
    plan, _ = planning.plan_service(
        _svc(10), gappy, planning.ServiceState(), float(t[-1]) + STEP, planning.PlanSettings()
    )
    assert plan.gated and "gaps" in plan.reason and plan.replicas == 10


def test_no_history_never_scales_to_zero() -> None:
    plan, _ = planning.plan_service(
        _svc(3), None, planning.ServiceState(), 1000.0, planning.PlanSettings()
    )
    assert plan.gated and plan.replicas == 3 and "no demand history" in plan.reason


def test_two_good_samples_scale_with_room_but_two_bad_ones_only_hold() -> None:
    # Two fine samples are a young history, not bad data: the no-forecast rule's room (70 %).
    young = series.Series.of([0.0, 60.0], [20.0, 35.0])
    plan, _ = planning.plan_service(
        _svc(2), young, planning.ServiceState(), 120.0, planning.PlanSettings()
    )
    assert plan.gated and plan.replicas == 5  # 35 / (0.7 x 10) = 5
    assert "only 2 demand samples" in plan.reason
    # With a NaN among them the gate only holds or scales up to what the last good sample needs.
    bad = series.Series.of([0.0, 60.0], [float("nan"), 35.0])
    plan, _ = planning.plan_service(
        _svc(2), bad, planning.ServiceState(), 120.0, planning.PlanSettings()
    )
    assert plan.gated and plan.replicas == 4


def _on_off(days: int) -> series.Series:
    """Idle at night, 100 req/s from 08:00 to 20:00, every day."""
    t = np.arange(0, days * periods.DAY, STEP)
    hour = (t % periods.DAY) / 3600.0
    v = np.where((hour >= 8) & (hour < 20), 100.0, 0.0)
    rng = np.random.default_rng(5)
    v = np.where(v > 0, v + rng.normal(0, 2, t.size), 0.0)
    return series.Series.of(t, v)


def test_scales_to_zero_when_the_forecast_is_idle_and_prewarms_before_demand_returns() -> None:
    full = _on_off(6)
    day5 = 5 * periods.DAY
    state: dict[str, planning.ServiceState] = {}
    replicas = 12
    history_end = np.searchsorted(full.times, day5 + 21 * 3600.0)
    # 21:00: an hour into the idle stretch -> to zero.
    h = series.Series.of(full.times[:history_end], full.values[:history_end])
    acts, state = _decide(POLICY, _svc(replicas), h, float(full.times[history_end]), state)
    assert acts and acts[0].replicas == 0, acts
    assert "scale to zero" in acts[0].reason
    # Walk towards 08:00 next day: replicas must be back before the first request arrives.
    replicas = 0
    first_demand = day5 + periods.DAY + 8 * 3600.0
    warmed_at = None
    for now in np.arange(first_demand - 600.0, first_demand + STEP, STEP):
        i = int(np.searchsorted(full.times, now))
        h = series.Series.of(full.times[:i], full.values[:i])
        if i >= full.times.size:
            t_ext = np.arange(full.times[-1] + STEP, now, STEP)
            h = series.Series.of(
                np.concatenate([full.times, t_ext]),
                np.concatenate([full.values, np.zeros(t_ext.size)]),
            )
        acts, state = _decide(POLICY, _svc(replicas), h, float(now), state)
        if acts:
            replicas = acts[0].replicas
            if replicas > 0 and warmed_at is None:
                warmed_at = float(now)
    assert warmed_at is not None
    assert first_demand - warmed_at >= 45.0, "replicas must start at least a cold start ahead"
    assert replicas >= 10


def test_min_replicas_blocks_scale_to_zero() -> None:
    full = _on_off(6)
    end = int(np.searchsorted(full.times, 5 * periods.DAY + 22 * 3600.0))
    h = series.Series.of(full.times[:end], full.values[:end])
    acts, _ = _decide(POLICY, _svc(12, lo=2), h, float(full.times[end]))
    assert acts and acts[0].replicas == 2


def test_scale_down_waits_for_a_safe_forecast() -> None:
    """Demand dips for 2 steps every 10 minutes: dropping replicas for the dip is not safe."""
    t = np.arange(0, 3 * periods.DAY, STEP)
    v = np.where((t // STEP) % 10 < 8, 100.0, 20.0)
    h = series.Series.of(t, v)
    acts, _ = _decide(POLICY, _svc(10), h, float(t[-1]) + STEP)
    assert not acts or acts[0].replicas >= 10


@settings(max_examples=25, deadline=None)
@given(
    level=st.floats(min_value=0.0, max_value=500.0),
    replicas=st.integers(min_value=0, max_value=60),
    lo=st.integers(min_value=0, max_value=5),
    hi=st.integers(min_value=5, max_value=40),
    stale=st.booleans(),
)
def test_replicas_always_within_bounds(
    level: float, replicas: int, lo: int, hi: int, stale: bool
) -> None:
    h = _steady(200, max(level, 0.01))
    now = float(h.times[-1]) + (30 * STEP if stale else STEP)
    svc = _svc(min(max(replicas, lo), hi), lo=lo, hi=hi)
    plan, _ = planning.plan_service(svc, h, planning.ServiceState(), now, planning.PlanSettings())
    assert lo <= plan.replicas <= hi


def test_decisions_are_pure() -> None:
    h = _steady(800, 50.0)
    now = float(h.times[-1]) + STEP
    a1, s1 = _decide(POLICY, _svc(2), h, now)
    a2, s2 = _decide(POLICY, _svc(2), h, now)
    assert a1 == a2
    fitted = s1[KEY].fitted
    assert fitted is not None and s2[KEY].fitted is not None
    assert fitted.name == s2[KEY].fitted.name
    # The cached fit is reused on the next step (no refit), and gives the same plan.
    a3, s3 = _decide(POLICY, _svc(2), h, now, s1)
    assert s3[KEY].fitted is fitted and a3 == a1


def test_recurring_rise_at_the_same_clock_time_is_planned_for() -> None:
    # Flat demand of 10 req/s that jumps to 30 req/s at the same minute of every day.
    day = 86400.0
    t = np.arange(0.0, 4 * day, STEP)
    v = np.full(t.size, 10.0)
    jump = round(0.5 * day / STEP)
    for d in range(4):
        v[d * 1440 + jump : d * 1440 + jump + 30] = 30.0
    now = 3 * day + jump * STEP - 2 * STEP
    past = series.Series.of(t[t < now], v[t < now])
    peak = planning.recurring_peak(past, now, 3 * STEP, days=3)
    assert peak is not None
    assert math.isclose(peak[1], 3.0)
    assert math.isclose(peak[0], 30.0)
    # Well before the jump, and on noise that does not rise at one time of day: no guard.
    assert planning.recurring_peak(past, now - 3600.0, 3 * STEP, days=3) is None
    rng = np.random.default_rng(3)
    noisy = series.Series.of(t[t < now], 10.0 + rng.random(int((t < now).sum())))
    found = planning.recurring_peak(noisy, now, 3 * STEP, days=3)
    assert found is None or found[1] < 1.1
    # Too little history for three days back.
    two_days = past.since(now - 2 * day - 3 * STEP)
    assert planning.recurring_peak(two_days, now, 3 * STEP, days=3) is None
    # ... unless two days will do while there are no more: the jump showed on both.
    found = planning.recurring_peak(two_days, now, 3 * STEP, days=3, min_days=2)
    assert found is not None and math.isclose(found[1], 3.0)
    # One day is never enough.
    one_day = past.since(now - day - 3 * STEP)
    assert planning.recurring_peak(one_day, now, 3 * STEP, days=3, min_days=2) is None


def test_spare_room_over_the_current_load() -> None:
    t = np.arange(0.0, 200 * STEP, STEP)
    past = series.Series.of(t, 49.0 + np.random.default_rng(1).random(t.size))
    now = float(t[-1] + STEP)
    tight, _ = planning.plan_service(
        _svc(5), past, planning.ServiceState(), now, planning.PlanSettings(spare=0.0)
    )
    roomy, _ = planning.plan_service(
        _svc(5), past, planning.ServiceState(), now, planning.PlanSettings(spare=0.3)
    )
    assert not tight.gated and not roomy.gated
    assert tight.replicas >= 5
    # The last sample (about 50 req/s) with 30 % room needs 7 replicas of 10 req/s.
    assert roomy.replicas >= 7


def _daily_jumps(
    days: int, *, skip: tuple[int, ...] = (), shift: dict[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Flat 10 req/s with a jump to 30 req/s for 30 minutes at noon, per day (minute steps):
    (times, values, the jump's step of the day)."""
    day = 86400.0
    t = np.arange(0.0, days * day, STEP)
    v = np.full(t.size, 10.0)
    jump = round(0.5 * day / STEP)
    for d in range(days):
        if d in skip:
            continue
        at = d * 1440 + jump + (shift or {}).get(d, 0)
        v[at : at + 30] = 30.0
    return t, v, jump


def test_recurring_rise_survives_a_quiet_day_and_a_late_one() -> None:
    day = 86400.0
    # Eight days; the jump skipped yesterday (a weekend, say) and came 2 minutes late on the four
    # days before.
    t, v, jump = _daily_jumps(8, skip=(6,), shift={2: 2, 3: 2, 4: 2, 5: 2})
    now = 7 * day + jump * STEP - STEP
    past = series.Series.of(t[t < now], v[t < now])
    found = planning.recurring_peak(
        past, now, 3 * STEP, days=3, share=0.3, jitter_s=120.0, step=STEP
    )
    assert found is not None and math.isclose(found[1], 3.0)
    # On time only (no jitter), two days of seven rose: not enough.
    assert planning.recurring_peak(past, now, 3 * STEP, days=3, share=0.3, step=STEP) is None
    # Every one of the last three days was required before: yesterday's quiet day hid the rise.
    assert planning.recurring_peak(past, now, 3 * STEP, days=3, look_back_days=3) is None


def test_recurring_rise_counts_the_bucket_starting_at_the_clock_time() -> None:
    # Deciding exactly when the jump's bucket starts: on past days that bucket is the rise
    # (it was to come), not part of the level before it.
    day = 86400.0
    t, v, jump = _daily_jumps(4)
    now = 3 * day + jump * STEP
    past = series.Series.of(t[t < now], v[t < now])
    found = planning.recurring_peak(past, now, 2 * STEP, days=3)
    assert found is not None and math.isclose(found[0], 30.0)


def test_scale_down_waits_for_the_recent_peak_to_age() -> None:
    # Steady 100 req/s for a day, then two minutes at 50: the load may jump back.
    h = _steady(1440, 100.0)
    v = h.values.copy()
    v[-2:] = 50.0
    dipped = series.Series.of(h.times, v)
    now = float(h.times[-1]) + STEP
    held, _ = _decide(SEASONED, _svc(11), dipped, now)
    eager = planning.ForecastPolicy(
        settings=planning.PlanSettings(young_spare=0.0, stabilize_s=0.0)
    )
    dropped, _ = _decide(eager, _svc(11), dipped, now)
    assert all(a.replicas >= 10 for a in held)  # the peak of the last 5 minutes needs 10+
    assert dropped and dropped[0].replicas < 10


def test_recurring_rise_out_of_silence_is_capped_by_what_came() -> None:
    # Near-silent demand (0.01 req/s) with a spike to 5 req/s at noon every day, and one spike
    # just now: 500x "rise" times the recent spike would plan 2,500 req/s.
    day = 86400.0
    t, v, jump = _daily_jumps(4)
    v = np.where(v > 20.0, 5.0, 0.01)
    now = 3 * day + jump * STEP
    v[(t >= now - 2 * STEP) & (t < now)] = 5.0
    past = series.Series.of(t[t < now], v[t < now])
    found = planning.recurring_peak(past, now, 2 * STEP, days=3, before_s=2 * STEP)
    assert found is not None
    assert found[1] > 100.0 and math.isclose(found[0], 5.0)


def _recurring_by_hand(
    h: series.Series,
    now: float,
    window_s: float,
    *,
    before_s: float,
    jitter_s: float,
    step: float,
    min_days: int,
) -> tuple[float, float] | None:
    """recurring_peak(days=3, share=0.3) written as plainly as possible, window by window."""

    def top(a: float, b: float) -> float | None:
        keep = (h.times >= a) & (h.times < b) & np.isfinite(h.values)
        return float(h.values[keep].max()) if keep.any() else None

    recent = top(now - before_s, now)
    reach = round(jitter_s / step)
    rises, highest = [], 0.0
    for k in range(1, 8):
        t = now - k * 86400.0
        if h.times[0] > t - before_s:
            break
        day = []
        for o in range(-reach, reach + 1):
            b, a = (
                top(t + o * step - before_s, t + o * step),
                top(t + o * step, t + o * step + window_s),
            )
            if b is not None and a is not None and b > 0.0:
                day.append(a / b)
                highest = max(highest, a)
        if not day:
            return None
        rises.append(max(day))
    if len(rises) < min(3, min_days) or recent is None:
        return None
    need = min(len(rises), max(3, math.ceil(0.3 * len(rises))))
    rise = sorted(rises, reverse=True)[need - 1]
    return (min(recent * rise, highest), rise) if rise > 1.0 else None


def test_recurring_peak_matches_a_plain_loop_on_random_series() -> None:
    rng = np.random.default_rng(11)
    for i in range(80):
        step = float(rng.choice([15.0, 60.0, 300.0]))
        window, before = step * int(rng.integers(1, 5)), step * int(rng.integers(1, 8))
        jitter = float(rng.choice([0.0, 120.0, 300.0]))
        span = rng.uniform(1.5, 9.0) * 86400.0
        if i % 2:
            # History that starts within a jitter of the oldest day's before-window: the edge.
            span = int(rng.integers(2, 9)) * 86400.0 + before + rng.uniform(-jitter - step, step)
        t = np.arange(0.0, span, step)
        v = rng.gamma(2.0, 1.0, t.size) * (1.0 + (rng.random(t.size) < 0.02) * 4.0)
        v[rng.random(t.size) < 0.01] = np.nan
        h = series.Series.of(t, v)
        now = float(t[-1]) + step
        min_days = int(rng.choice([2, 3]))
        got = planning.recurring_peak(
            h,
            now,
            window,
            3,
            before_s=before,
            share=0.3,
            jitter_s=jitter,
            step=step,
            min_days=min_days,
        )
        want = _recurring_by_hand(
            h, now, window, before_s=before, jitter_s=jitter, step=step, min_days=min_days
        )
        assert (got is None) == (want is None)
        if got is not None and want is not None:
            assert math.isclose(got[0], want[0]) and math.isclose(got[1], want[1])

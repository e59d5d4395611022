"""How fast kopilot fits, forecasts and decides.

    python bench/scaling_speed.py --data DIR [--services 1000] [--days 14]
    python bench/scaling_speed.py --quick     # 50 services, 3 days, on the bundled sample

1. Fit + forecast for one service with `--days` of 1-minute history (period detection, rolling
   backtest of every forecaster, calibration, refit, one quantile forecast). Brief: under 1 s.
2. One decision for `--services` services whose fits are cached in the policy state (the steady
   state of a control loop: refits are spread over hours). Brief: under 2 s for 1,000.
3. The same decision with a cold state (every service fitted in that one call), for reference.

History: Crane's input1 (16 days at 60 s, real CPU series; with --quick the bundled input10,
the sample kept at 60 s) cut to `--days` days, with each
service's copy scaled and shifted in time by a seeded random amount so no two are identical.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import datasets  # bench/datasets.py: --data, --quick and where each data set comes from


def main() -> None:
    from kopilot.model import cluster, series
    from kopilot.scaling import forecasters, forecasting, planning
    from kopilot.traces import demand

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=None, help="default 1000 (--quick 50)")
    parser.add_argument("--days", type=float, default=None, help="default 14 (--quick 3)")
    parser.add_argument("--repeat", type=int, default=None, help="default 5 (--quick 1)")
    datasets.add_arguments(parser, "crane-dsp-testdata")
    args = parser.parse_args()
    quick = args.quick
    args.services = args.services or (50 if quick else 1000)
    args.days = args.days or (3.0 if quick else 14.0)
    args.repeat = args.repeat or (1 if quick else 5)
    data = datasets.root(args, "crane-dsp-testdata") / "crane-dsp-testdata"
    path = datasets.need_file(data / ("input10.csv" if quick else "input1.csv"))

    trace = demand.load_crane(path)
    t0 = float(trace.demand.times[0])
    keep = trace.demand.times < t0 + args.days * 86400.0
    times, values = trace.demand.times[keep], trace.demand.values[keep]
    now = float(times[-1]) + 60.0
    history = series.Series.of(times, values)
    print(f"history: {len(history)} samples ({args.days:g} days at 60 s) from {path.name}")

    fit_times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        # As the policy calls it for a 45 s cold start at 60 s steps: a 2-step peak window,
        # the 7-step scale-down window, the default spare-capacity budget.
        fitted = forecasting.select(
            history,
            step=60.0,
            horizon=2,
            quantile=0.95,
            now=now,
            headroom=planning.PlanSettings().headroom,
            also=(7,),
        )
        assert fitted is not None
        grid = forecasters.regular(history, 60.0, since=now - (fitted.model.lookback + 2) * 60.0)
        fitted.quantiles(grid, 60, [0.5, 0.9, 0.95])
        fit_times.append(time.perf_counter() - started)
    print(
        f"1. fit + forecast, one service: median {statistics.median(fit_times):.3f} s, "
        f"max {max(fit_times):.3f} s over {args.repeat} runs (chose {fitted.name}, "
        f"{fitted.period.label} period, p{fitted.quantile * 100:g}) [target < 1 s]"
    )

    rng = random.Random(7)
    services = []
    demand_by_key = {}
    for i in range(args.services):
        scale = rng.uniform(0.5, 2.0)
        key = f"bench/svc-{i}"
        services.append(
            cluster.ModelService(
                name=f"svc-{i}",
                namespace="bench",
                replicas=10,
                ready_replicas=10,
                capacity_rps=float(values.max()) * scale / 30,
                cold_start_s=45.0,
                max_replicas=300,
            )
        )
        demand_by_key[key] = series.Series(times=times, values=values * scale)
    snap = cluster.ClusterSnapshot(time=now, services=tuple(services), demand=demand_by_key)
    policy = planning.ForecastPolicy()
    # Warm the cache with one service's fit, shared: fitting 1,000 copies is case 3.
    state = policy.initial_state()
    one = policy.decide(
        cluster.ClusterSnapshot(time=now, services=(services[0],), demand=demand_by_key), state, now
    ).state[services[0].key]
    warm = {s.key: one for s in services}
    warm_times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        decision = policy.decide(snap, warm, now)
        warm_times.append(time.perf_counter() - started)
    print(
        f"2. one decision, {args.services} services, cached fits: median "
        f"{statistics.median(warm_times):.3f} s, max {max(warm_times):.3f} s "
        f"({len(decision.actions)} scale actions) [target < 2 s]"
    )
    cold_n = min(args.services, 100)
    started = time.perf_counter()
    policy.decide(
        cluster.ClusterSnapshot(time=now, services=tuple(services[:cold_n]), demand=demand_by_key),
        {},
        now,
    )
    cold = time.perf_counter() - started
    print(
        f"3. one decision, {cold_n} services, cold state (every one fitted now): {cold:.2f} s "
        f"({cold / cold_n * 1000:.0f} ms per service)"
    )


if __name__ == "__main__":
    main()

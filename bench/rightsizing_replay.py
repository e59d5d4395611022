"""Rightsizing replay: krr "simple", the VPA recommender and kopilot, side by side.

Each usage series is split in time: each strategy is trained on the first part (default 70 %)
and its recommendation is held against the rest (`kopilot.cost.replay`). Printed per strategy:
wasted core-hours / GiB-hours / GPU-hours, OOM-kills (memory), throttled intervals (CPU) and GPU
contention intervals, and kopilot's waste as a ratio of krr's and VPA's.

Data (read as-is from --data DIR, see bench/datasets.py; --quick reads the bundled samples):
- CPU: the 16 Crane DSP series (crane-dsp-testdata/input*.csv); the source does not state the
  unit, the values are read as millicores (input15 then peaks at 22 cores, input0 at 0.15).
- GPU: the Alibaba GenTD26 per-pod GPU duty cycle (pod_gpu_duty_cycle_anon.csv, 143 pods x
  ~23 h); each pod holds one GPU, duty cycle % / 100 = GPU share used.
- Memory: none of the data sets has a real memory series. The memory rows are a STAND-IN: the
  same Crane series, each scaled so that its peak is 2 GiB of working set (read as MiB, most
  would sit under the 100-250 MiB floors of the strategies and the floors would decide). They
  exercise the OOM logic; they are not evidence about real memory behaviour.

kopilot's quantile and margin are chosen by the strategy itself, by backtesting on the last
third of each training part (never on the evaluated part); --over-budget sets its budget.

Usage: python bench/rightsizing_replay.py --data DIR [--train 0.7] [--over-budget 0.01] [--per-series]
       python bench/rightsizing_replay.py --quick   (16 Crane samples at 15 min, 3 GenTD26 pods)
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import time
from collections import defaultdict

import numpy as np

import datasets  # bench/datasets.py: --data, --quick and where each data set comes from
from kopilot.cost import replay, rightsizing
from kopilot.model import series

MIB = 1024.0**2
GIB = 1024.0**3


def crane(data: pathlib.Path) -> dict[str, series.Series]:
    out = {}
    for path in sorted(
        (data / "crane-dsp-testdata").glob("input*.csv"), key=lambda p: int(p.stem[5:])
    ):
        raw = np.genfromtxt(path, delimiter=",", skip_header=1)
        out[path.stem] = series.Series.of(raw[:, 0], raw[:, 1])
    return out


def alibaba_gpu(data: pathlib.Path) -> dict[str, series.Series]:
    rows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with (data / "alibaba-gentd26" / "pod_gpu_duty_cycle_anon.csv").open() as f:
        for row in csv.DictReader(f):
            rows[row["container_ip"]].append((float(row["timestamp_anon"]), float(row["value"])))
    out = {}
    for pod, samples in sorted(rows.items()):
        samples.sort()
        t = np.array([s[0] for s in samples])
        v = np.array([s[1] for s in samples]) / 100.0
        out[pod[:8]] = series.Series.of(t, v)
    return out


def plot(
    path: pathlib.Path,
    totals: dict[str, dict[str, list[float]]],
    frontiers: dict[str, series.FloatArray],
) -> None:
    """Waste against intervals over: each strategy a point, the hindsight frontier a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = (("cpu", "core-hours", "throttled intervals"), ("gpu", "GPU-hours", "intervals over"))
    for ax, (resource, unit, over) in zip(axes, panels, strict=True):
        frontier = frontiers[resource]
        ax.plot(
            np.arange(len(frontier)),
            frontier,
            color="0.5",
            label="best static levels in hindsight",
        )
        for name, (waste, n_over, *_) in totals[resource].items():
            ax.scatter([n_over], [waste], s=40, zorder=3, label=name)
            ax.annotate(name, (n_over, waste), textcoords="offset points", xytext=(5, 5))
        target = 0.7 * totals[resource]["krr-simple"][0]
        ax.axhline(target, color="0.3", linestyle=":", linewidth=1, label="target: 0.7 x krr")
        ax.set_title(f"{resource.upper()}: waste vs. {over}")
        ax.set_xlabel(over)
        ax.set_ylabel(f"wasted {unit}")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--train", type=float, default=0.7, help="fraction of each series to train on"
    )
    parser.add_argument("--per-series", action="store_true", help="print every series' figures")
    parser.add_argument(
        "--plot",
        type=pathlib.Path,
        default=None,
        help="write a PNG: waste against intervals over, per strategy, beside the best static "
        "levels in hindsight (CPU and GPU)",
    )
    parser.add_argument(
        "--over-budget",
        type=float,
        default=rightsizing.Kopilot().over_budget,
        help="kopilot's backtest budget: the share of samples usage may exceed its level",
    )
    datasets.add_arguments(parser, "crane-dsp-testdata", "alibaba-gentd26")
    args = parser.parse_args()
    data = datasets.root(args, "crane-dsp-testdata", "alibaba-gentd26")
    strategies = (
        rightsizing.KrrSimple(),
        rightsizing.VpaRecommender(),
        rightsizing.Kopilot(over_budget=args.over_budget),
    )
    names = [s.name for s in strategies]
    # totals[resource][strategy] = [waste_hours, over_intervals, crossings, short_hours]
    totals: dict[str, dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0.0, 0, 0, 0.0])
    )
    t0 = time.perf_counter()
    cpu = crane(data)
    gpu = alibaba_gpu(data)
    jobs: list[tuple[str, str, series.Series, float]] = []
    jobs += [("cpu", k, s, 1 / 1000.0) for k, s in cpu.items()]
    jobs += [("memory*", k, s, 2 * GIB / float(np.max(s.values))) for k, s in cpu.items()]
    jobs += [("gpu", k, s, 1.0) for k, s in gpu.items()]
    per_series: list[str] = []
    evaluated: dict[str, list[series.Series]] = defaultdict(list)
    skipped: dict[str, int] = defaultdict(int)
    for resource, key, s, scale in jobs:
        scaled = series.Series.of(s.times, s.values * scale)
        train, test = replay.split(scaled, args.train)
        if resource == "cpu":
            history = rightsizing.History(subject=key, cpu=(train,), cpu_request=None)
        elif resource == "memory*":
            history = rightsizing.History(subject=key, memory=(train,))
        else:
            history = rightsizing.History(subject=key, gpu=(train,), gpus=1.0)
        line = [f"{resource:8s} {key:9s}"]
        recs = [strategy.recommend(history) for strategy in strategies]
        levels = [{"cpu": r.cpu, "memory*": r.memory, "gpu": r.gpu}[resource] for r in recs]
        if any(level is None for level in levels):
            # Compare like with like: a series goes into the totals only if all three answered.
            skipped[resource] += 1
            why = [
                f"{r.strategy}: {'; '.join(r.notes)}"
                for r, lv in zip(recs, levels, strict=True)
                if lv is None
            ]
            line.append("skipped (" + " | ".join(why) + ")")
            per_series.append("  ".join(line))
            continue
        evaluated[resource].append(test)
        for strategy, level in zip(strategies, levels, strict=True):
            assert level is not None
            out = replay.replay(level, test)
            unit = GIB if resource == "memory*" else 1.0
            acc = totals[resource][strategy.name]
            acc[0] += out.waste_hours / unit
            acc[1] += out.over_intervals
            acc[2] += out.crossings
            acc[3] += out.short_hours / unit
            line.append(
                f"{strategy.name}: waste {out.waste_hours / unit:9.3f} over {out.over_intervals:5d} x{out.crossings:4d}"
            )
        per_series.append("  ".join(line))
    elapsed = time.perf_counter() - t0
    if args.per_series:
        print("\n".join(per_series))
        print()
    print(
        f"train on first {args.train:.0%} of each series, evaluate on the rest; {len(cpu)} Crane series, {len(gpu)} Alibaba GPU pods; {elapsed:.1f} s"
    )
    print(
        "series left out because a strategy gave no recommendation (too little or gappy history): "
        + (", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or "none")
        + "\n"
    )
    header = (
        f"{'resource':30s}"
        + "".join(f"{n:>14s}" for n in names)
        + f"{'kopilot/krr':>13s}{'kopilot/vpa':>13s}"
    )
    print(header)
    print("-" * len(header))
    rows = [
        ("cpu", 0, "wasted core-hours"),
        ("cpu", 1, "throttled intervals"),
        ("cpu", 3, "unmet core-hours"),
        ("memory*", 0, "wasted GiB-hours (stand-in)"),
        ("memory*", 2, "OOM-kills (stand-in)"),
        ("gpu", 0, "wasted GPU-hours"),
        ("gpu", 1, "GPU contention intervals"),
        ("gpu", 3, "unmet GPU-hours"),
    ]
    for resource, i, label in rows:
        vals = [totals[resource][n][i] for n in names]
        k, krr, vpa = (
            vals[names.index("kopilot")],
            vals[names.index("krr-simple")],
            vals[names.index("vpa")],
        )
        ratio = lambda a, b: f"{a / b:13.3f}" if b else f"{'n/a':>13s}"  # noqa: E731
        cells = "".join(
            f"{v:14.3f}" if isinstance(v, float) and i in (0, 3) else f"{int(v):14d}" for v in vals
        )
        print(f"{label:30s}{cells}{ratio(k, krr)}{ratio(k, vpa)}")
    print()
    # What no static level could beat: each series' level picked knowing the part it is held
    # against, with no more over-intervals in total than krr had. kopilot's CPU schedules can
    # go below it; on the GPU series (under a day each) only static levels are possible.
    # One frontier per resource (every count of intervals over, up to 1.3 x the most any
    # strategy had, for the plot) serves both the printed bounds and the plot.
    frontiers = {
        resource: replay.hindsight_frontier(
            evaluated[resource],
            max_over_intervals=int(max(v[1] for v in totals[resource].values()) * 1.3) + 1,
        )
        for resource in ("cpu", "gpu")
    }
    for resource, unit, what in (("cpu", "core-hours", "throttled"), ("gpu", "GPU-hours", "over")):
        krr_waste = totals[resource]["krr-simple"][0]
        for who in ("krr-simple", "kopilot"):
            budget = int(totals[resource][who][1])
            waste = float(frontiers[resource][budget])
            print(
                f"{resource}: best static levels in hindsight with <= {budget} {what} intervals "
                f"({who}'s): waste {waste:.3f} {unit} = {waste / krr_waste:.3f} x krr"
            )
    print()
    if args.plot is not None:
        plot(args.plot, totals, frontiers)
        print(f"plot: {args.plot}\n")
    ok_cpu = totals["cpu"]["kopilot"][0] <= 0.7 * totals["cpu"]["krr-simple"][0]
    ok_gpu = totals["gpu"]["kopilot"][0] <= 0.7 * totals["gpu"]["krr-simple"][0]
    ok_oom = totals["memory*"]["kopilot"][2] <= totals["memory*"]["vpa"][2]
    ok_thr = totals["cpu"]["kopilot"][1] <= totals["cpu"]["krr-simple"][1]
    print(f"target kopilot CPU waste <= 0.7 x krr: {'met' if ok_cpu else 'NOT met'}")
    print(f"target kopilot GPU waste <= 0.7 x krr: {'met' if ok_gpu else 'NOT met'}")
    print(f"target kopilot OOM-kills <= VPA (stand-in memory): {'met' if ok_oom else 'NOT met'}")
    print(f"kopilot throttled intervals <= krr: {'yes' if ok_thr else 'NO'}")


if __name__ == "__main__":
    main()

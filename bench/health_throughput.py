"""Throughput of kopilot's streaming detector: can one core keep up with 100,000 streams at one
point per stream every 15 s?

    python bench/health_throughput.py [--streams 100000] [--steps 20]

Feeds synthetic series (daily cycle + noise + occasional spikes, a few streams missing points)
through `kopilot.health.ensembles.default` and prints the time per update step (all streams at
once) beside the 15 s budget, plus the rolling z-score baseline in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import datasets  # bench/datasets.py: --quick
from kopilot.health import ensembles, streaming, zscores

BUDGET_S = 15.0


def synthetic(streams: int, steps: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    phase = rng.uniform(0, 2 * np.pi, streams)[None, :]
    level = rng.uniform(10, 1000, streams)[None, :]
    x = level * (1 + 0.3 * np.sin(2 * np.pi * t / 5760 + phase))
    x = x + rng.normal(0, 0.05, (steps, streams)) * level
    x[rng.random((steps, streams)) < 1e-3] *= 5.0
    x[rng.random((steps, streams)) < 1e-3] = np.nan
    return x


def measure(name: str, detector: streaming.Detector, data: np.ndarray) -> float:
    times = []
    for row in data:
        t0 = time.perf_counter()
        detector.update(row)
        times.append(time.perf_counter() - t0)
    per_step = float(np.median(times[1:] if len(times) > 1 else times))
    print(
        f"{name:32s} {data.shape[1]:>7d} streams: median {per_step * 1000:8.1f} ms per step "
        f"(max {max(times) * 1000:.1f} ms); budget {BUDGET_S:.0f} s -> "
        f"{BUDGET_S / per_step:,.0f}x headroom; {data.shape[1] / per_step:,.0f} points/s"
    )
    return per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=20)
    datasets.add_quick(parser, streams=10_000, steps=5)
    args = parser.parse_args()
    datasets.apply_quick(parser, args)
    data = synthetic(args.streams, args.steps)
    print(f"one core, numpy {np.__version__}, {args.steps} steps")
    measure("rolling z-score (baseline)", zscores.RollingZScore(args.streams), data)
    per_step = measure("kopilot ensemble", ensembles.default(args.streams), data)
    verdict = "keeps up" if per_step < BUDGET_S else "DOES NOT keep up"
    print(f"kopilot ensemble {verdict} with {args.streams:,} streams at one point per 15 s")


if __name__ == "__main__":
    main()

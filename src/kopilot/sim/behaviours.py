"""How a GPU model-serving pod behaves under load, shared by the fault twin and the replay exporter.

One model, two users: `sim/faults.py` turns it into metric streams for the health loop, and
`sim/replaying.py` into the exporters' Prometheus series. `load` is demand normalised to [0, 1];
`rnd` is a seeded numpy generator, so the same seed gives the same values. The defaults describe
the twin's replica (an 8 GiB memory limit): memory scales with the limit for other pods.

| signal | normal behaviour |
|---|---|
| working-set memory | 73 % of the limit at no load, +5 % of it at full load, noise 25 MiB per 8 GiB |
| p99 latency | `base` (80 ms) x (1 + load / 2) x slowdown, noise 4 ms |
| GPU temperature | 55 C + 15 C x load, noise 1 C |
| errors | 0.3 a minute (Poisson) |
| XID errors of a failing GPU | 0.2 a minute at onset, 3 more a minute for every hour after |
"""

from __future__ import annotations

import numpy as np

REFERENCE_LIMIT_MIB = 8192.0
"""The memory limit the memory figures below are given for (the twin's replica)."""
BASE_MEMORY_MIB = 6000.0
MEMORY_PER_LOAD_MIB = 400.0
MEMORY_NOISE_MIB = 25.0
BASE_LATENCY_MS = 80.0
LATENCY_NOISE_MS = 4.0
BASELINE_ERRORS_PER_MIN = 0.3
BAD_NODE_ERRORS_PER_MIN = 8.0
BAD_NODE_SLOWDOWN = 2.0
DEAD_GPU_ERRORS_PER_MIN = 60.0
DEAD_GPU_SLOWDOWN = 3.0
OOM_KILL_ERRORS = 40.0
"""Requests a replica fails when it is OOM-killed."""


def quiet_memory_mib(load: float, *, limit_mib: float = REFERENCE_LIMIT_MIB) -> float:
    """Working set without noise (what a restarted replica comes back with)."""
    return (BASE_MEMORY_MIB + MEMORY_PER_LOAD_MIB * load) * (limit_mib / REFERENCE_LIMIT_MIB)


def memory_mib(
    load: float, rnd: np.random.Generator, *, limit_mib: float = REFERENCE_LIMIT_MIB
) -> float:
    """Working set of a healthy replica at `load`."""
    scale = limit_mib / REFERENCE_LIMIT_MIB
    return (
        quiet_memory_mib(load, limit_mib=limit_mib)
        + float(rnd.normal(0.0, MEMORY_NOISE_MIB)) * scale
    )


def latency_ms(
    load: float,
    rnd: np.random.Generator,
    *,
    slowdown: float = 1.0,
    base_ms: float = BASE_LATENCY_MS,
) -> float:
    """p99 request latency at `load`, `slowdown` times the normal."""
    return base_ms * (1.0 + 0.5 * load) * slowdown + float(rnd.normal(0.0, LATENCY_NOISE_MS))


def temperature_c(load: float, rnd: np.random.Generator) -> float:
    """GPU temperature at `load` (its duty cycle, 0-1)."""
    return 55.0 + 15.0 * load + float(rnd.normal(0.0, 1.0))


def baseline_errors(rnd: np.random.Generator, *, minutes: float = 1.0) -> float:
    """Requests a healthy replica fails in `minutes`."""
    return float(rnd.poisson(BASELINE_ERRORS_PER_MIN * minutes))


def xid_rate_per_min(hours_since_onset: float) -> float:
    """XID errors a minute of a GPU that started failing `hours_since_onset` ago (0 before)."""
    return 0.0 if hours_since_onset < 0 else 0.2 + 3.0 * hours_since_onset


__all__ = [
    "baseline_errors",
    "latency_ms",
    "memory_mib",
    "quiet_memory_mib",
    "temperature_c",
    "xid_rate_per_min",
]

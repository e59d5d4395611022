"""The oracle: perfect foresight, the lower bound on replica-hours for zero SLO violation.

Demand is piecewise constant on a grid (`demand[k]` over [t_k, t_k + step)). Replicas are
interchangeable, so the j-th replica is needed exactly in the steps where ceil(demand / capacity)
>= j, and each "slot" j is planned on its own: it starts one cold start before each run of needed
steps and, between two runs, it is kept alive if the gap is shorter than the cold start it would
take to restart (keeping costs the gap, restarting costs the cold start). Cold starts count as
replica time (a starting replica holds its GPU), exactly as in the replay twin. Each start's
cold start is drawn from the given samples with `rng`, and the oracle knows the draw.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from kopilot.model import series


@dataclass(frozen=True, slots=True, kw_only=True)
class OracleResult:
    replica_seconds: float
    starts: int
    peak_replicas: int

    @property
    def replica_hours(self) -> float:
        return self.replica_seconds / 3600.0


def plan(
    demand: series.FloatArray,
    step: float,
    capacity_rps: float,
    cold_starts_s: series.FloatArray,
    rng: random.Random,
    *,
    initial_replicas: int = 0,
) -> OracleResult:
    """Replica time of the perfect-foresight plan (no unserved demand).

    The first `initial_replicas` slots are ready at the start (as in the replay), and a slot that
    is needed from the very first step needs no start.
    """
    need = np.ceil(np.maximum(demand, 0.0) / capacity_rps - 1e-9).astype(np.int64)
    peak = int(need.max(initial=0))
    total = 0.0
    starts = 0
    for j in range(1, max(peak, initial_replicas) + 1):
        on = np.concatenate(([False], need >= j, [False]))
        edges = np.flatnonzero(np.diff(on.astype(np.int8)))
        run_starts, run_ends = edges[0::2], edges[1::2]
        prev_end: int | None = None
        ready_at_start = j <= initial_replicas
        for a, b in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
            if prev_end is None:
                if a == 0 and ready_at_start:
                    pass
                elif ready_at_start:
                    # Already running at t0: keep it until this run if that is cheaper.
                    cold = float(cold_starts_s[rng.randrange(len(cold_starts_s))])
                    if a * step <= cold:
                        total += a * step
                    else:
                        total += cold
                        starts += 1
                else:
                    total += float(cold_starts_s[rng.randrange(len(cold_starts_s))])
                    starts += 1
            else:
                gap = (a - prev_end) * step
                cold = float(cold_starts_s[rng.randrange(len(cold_starts_s))])
                if gap <= cold:
                    total += gap
                else:
                    total += cold
                    starts += 1
            total += (b - a) * step
            prev_end = b
    return OracleResult(replica_seconds=total, starts=starts, peak_replicas=peak)


def replicas_for(peak_rps: float, peak_replicas: int = 30) -> float:
    """A per-replica capacity such that the peak demand needs `peak_replicas` replicas."""
    if not math.isfinite(peak_rps) or peak_rps <= 0:
        raise ValueError(f"peak demand must be positive and finite, got {peak_rps}")
    return peak_rps / peak_replicas

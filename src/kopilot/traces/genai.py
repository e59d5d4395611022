"""The Alibaba GenAI serving trace (GenTD26): system request rate and model cold-start latency.

- `qps.csv` holds per-container request-rate samples (columns timestamp_anon, value, container_ip,
  request_type); the system rate at an instant is the sum over containers at that timestamp.
- `basemodel_update_latency_anon.csv` holds base-model load latencies in ms (the main part of a
  replica's cold start).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from kopilot.model import series
from kopilot.traces import csvs


def load_qps(path: Path) -> series.Series:
    """System request rate (req/s) per timestamp, summed over containers and request types."""
    totals: dict[float, float] = defaultdict(float)
    for line, row in csvs.rows(path, ("timestamp_anon", "value")):
        t = csvs.number(path, line, row, "timestamp_anon", minimum=0)
        totals[t] += csvs.number(path, line, row, "value", minimum=0)
    if not totals:
        raise csvs.TraceError(f"{path}: no data rows")
    times = sorted(totals)
    return series.Series.of(times, [totals[t] for t in times])


def load_cold_starts(path: Path) -> np.ndarray:
    """Cold-start samples in seconds (from milliseconds), in file order."""
    out = [
        csvs.number(path, line, row, "value", minimum=0) / 1000.0
        for line, row in csvs.rows(path, ("timestamp_anon", "value"))
    ]
    if not out:
        raise csvs.TraceError(f"{path}: no data rows")
    return np.array(out, dtype=np.float64)

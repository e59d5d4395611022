"""Request-rate series from real traces, and the cold-start distribution to replay them with.

Every loader returns a `DemandTrace`: a `series.Series` of request rates (req/s) on the trace's own
sampling step, with missing samples left out (a gap stays a gap: the scaler's data-quality gate is
the one that decides what a gap means). Loaders fail on a bad row with the file, the line and the
reason, as `errors.InvalidInputError`.

Formats (all CSV with a header):

| source | header | what a row is | rate |
|---|---|---|---|
| Alibaba GenTD26 `qps.csv` | `timestamp_anon,value,container_ip,request_type` | one container's QPS at one instant | summed over containers per timestamp |
| Azure LLM inference 2023 | `TIMESTAMP,ContextTokens,GeneratedTokens` | one request | requests counted per `step_s` bin ÷ `step_s` |
| NAB | `timestamp,value` | a count per bucket (e.g. taxi passengers per 30 min) | value ÷ bucket length |
| Crane DSP test data | `ts,value` | one sample of a service metric | the value as is (a load proxy) |
| Alibaba `basemodel_update_latency_anon.csv` | `timestamp_anon,value,container_ip` | one base-model load, in ms | (cold-start samples, in s) |
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kopilot.model import errors, series
from kopilot.traces import csvs


@dataclass(frozen=True, slots=True, kw_only=True)
class DemandTrace:
    """A request-rate series read from a trace file."""

    name: str
    path: str
    step_s: float
    """The trace's sampling step (the most common spacing of its samples)."""
    demand: series.Series
    """Request rate (req/s) per sample time (s since the epoch); gaps are absent samples."""


def _timestamp(path: Path, line: int, field: str, text: str) -> float:
    """Seconds since the epoch from `YYYY-MM-DD HH:MM:SS[.fffffff]` (read as UTC)."""
    body = text.strip()
    if "." in body:
        head, frac = body.split(".", 1)
        body = f"{head}.{frac[:6]}"
    try:
        stamp = dt.datetime.fromisoformat(body)
    except ValueError as e:
        raise csvs.TraceError(
            f"{path}, line {line}: {field}={text!r} is not a 'YYYY-MM-DD HH:MM:SS' time"
        ) from e
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def _step(path: Path, times: np.ndarray) -> float:
    if times.size < 2:
        raise errors.InvalidInputError(f"{path}: fewer than 2 samples; a demand series needs more")
    diffs = np.diff(times)
    if np.any(diffs <= 0):
        at = int(np.argmax(diffs <= 0)) + 1
        raise errors.InvalidInputError(
            f"{path}: sample {at + 1} (time {times[at]:.0f}) is not after the one before it; "
            "rows must be sorted by time without duplicates"
        )
    values, counts = np.unique(np.round(diffs, 3), return_counts=True)
    return float(values[int(np.argmax(counts))])


def _trace(path: Path, name: str, times: list[float], values: list[float]) -> DemandTrace:
    t = np.array(times, dtype=np.float64)
    v = np.array(values, dtype=np.float64)
    step = _step(path, t)
    return DemandTrace(name=name, path=str(path), step_s=step, demand=series.Series.of(t, v))


def load_alibaba_qps(path: Path | str, *, name: str | None = None) -> DemandTrace:
    """Alibaba GenTD26 `qps.csv`: per-container QPS samples, summed per timestamp."""
    p = Path(path)
    totals: dict[float, float] = {}
    for line, row in csvs.rows(p, ("timestamp_anon", "value")):
        t = csvs.number(p, line, row, "timestamp_anon")
        totals[t] = totals.get(t, 0.0) + csvs.number(p, line, row, "value", minimum=0.0)
    ordered = sorted(totals)
    return _trace(p, name or p.stem, ordered, [totals[t] for t in ordered])


def load_azure_llm(
    path: Path | str, *, step_s: float = 15.0, name: str | None = None
) -> DemandTrace:
    """Azure LLM inference trace (one row per request): requests per `step_s` bin, as req/s."""
    if step_s <= 0:
        raise errors.InvalidInputError(f"azure trace: step_s must be > 0, got {step_s}")
    p = Path(path)
    stamps: list[float] = []
    for line, row in csvs.rows(p, ("TIMESTAMP",)):
        stamps.append(_timestamp(p, line, "TIMESTAMP", row["TIMESTAMP"]))
    if len(stamps) < 2:
        raise errors.InvalidInputError(f"{p}: fewer than 2 requests; cannot make a rate series")
    arr = np.array(stamps, dtype=np.float64)
    start = math.floor(float(arr.min()) / step_s) * step_s
    bins = np.floor((arr - start) / step_s).astype(np.int64)
    counts = np.bincount(bins)
    times = start + step_s * np.arange(counts.size, dtype=np.float64)
    rates = counts.astype(np.float64) / step_s
    return DemandTrace(
        name=name or p.stem,
        path=str(p),
        step_s=step_s,
        demand=series.Series.of(times, rates),
    )


def load_nab(path: Path | str, *, name: str | None = None) -> DemandTrace:
    """A NAB series of counts per bucket (`timestamp,value`), as a rate: value ÷ bucket length."""
    p = Path(path)
    times: list[float] = []
    values: list[float] = []
    for line, row in csvs.rows(p, ("timestamp", "value")):
        times.append(_timestamp(p, line, "timestamp", row["timestamp"]))
        values.append(csvs.number(p, line, row, "value", minimum=0.0))
    trace = _trace(p, name or p.stem, times, values)
    rate = trace.demand.values / trace.step_s
    return DemandTrace(
        name=trace.name,
        path=trace.path,
        step_s=trace.step_s,
        demand=series.Series.of(trace.demand.times, rate),
    )


def load_crane(path: Path | str, *, name: str | None = None) -> DemandTrace:
    """A Crane DSP test series (`ts,value`): the metric value is the load, as is."""
    p = Path(path)
    times: list[float] = []
    values: list[float] = []
    for line, row in csvs.rows(p, ("ts", "value")):
        times.append(csvs.number(p, line, row, "ts"))
        values.append(csvs.number(p, line, row, "value", minimum=0.0))
    return _trace(p, name or p.stem, times, values)


def load_demand(path: Path | str, *, name: str | None = None) -> DemandTrace:
    """Load any of the supported formats, recognised by the header."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as handle:
            header = [h.strip() for h in next(csv.reader(handle), [])]
    except OSError as e:
        raise errors.InvalidInputError(f"{p}: cannot open ({e.strerror})") from e
    if "timestamp_anon" in header:
        return load_alibaba_qps(p, name=name)
    if "TIMESTAMP" in header:
        return load_azure_llm(p, name=name)
    if "ts" in header:
        return load_crane(p, name=name)
    if "timestamp" in header:
        return load_nab(p, name=name)
    raise errors.InvalidInputError(
        f"{p}:1: header {header} is not a known demand format "
        "(Alibaba qps.csv, Azure LLM trace, NAB timestamp/value, Crane ts/value)"
    )


def load_cold_starts(path: Path | str) -> np.ndarray:
    """Cold-start samples in seconds from Alibaba's `basemodel_update_latency_anon.csv` (ms)."""
    p = Path(path)
    out: list[float] = []
    for line, row in csvs.rows(p, ("value",)):
        ms = csvs.number(p, line, row, "value", minimum=0.0)
        if ms <= 0:
            raise errors.InvalidInputError(f"{p}:{line}: latency must be > 0 ms, got {ms:g}")
        out.append(ms / 1000.0)
    if not out:
        raise errors.InvalidInputError(f"{p}: no latency samples")
    return np.array(out, dtype=np.float64)

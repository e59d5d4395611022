"""A Prometheus HTTP API client (httpx): instant and range queries, validated.

Every response is checked: HTTP status, JSON, `status` (`success`/`error`) and `resultType`;
sample values `NaN`, `+Inf` and `-Inf` are kept as missing data (NaN) and counted, so callers can
say which series had gaps. Unreachable servers raise `UnreachableError` (temporary); bad bodies
or refused queries raise `BadResponseError` / `QueryError` (permanent).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx
import numpy as np

from kopilot.model import errors, series


class PrometheusError(errors.KopilotError):
    """Base of the Prometheus client's errors."""


class UnreachableError(PrometheusError, errors.TemporaryError):
    """The server did not answer (connection refused, timeout, DNS); retrying may help."""


class BadResponseError(PrometheusError, errors.PermanentError):
    """The server answered with something that is not a valid Prometheus API response."""


class QueryError(PrometheusError, errors.PermanentError):
    """Prometheus refused the query (`status: error`, e.g. a PromQL syntax error)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LabeledSeries:
    """One result series: its labels, its samples (NaN = missing), and how many were not finite."""

    labels: Mapping[str, str]
    samples: series.Series
    non_finite: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """A query's series plus Prometheus' warnings and our notes about non-finite samples."""

    query: str
    series: tuple[LabeledSeries, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


class Client:
    """A small, strict client for `/api/v1/query` and `/api/v1/query_range`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def query(self, promql: str, *, time: float) -> Result:
        """An instant query at `time` (unix seconds); vector and scalar results."""
        data = self._get("/api/v1/query", {"query": promql, "time": f"{time:.3f}"}, promql)
        kind = data.get("resultType")
        if kind == "scalar":
            t, v = _sample(data.get("result"), promql)
            return _result(promql, [({}, [t], [v])], data)
        if kind != "vector":
            raise BadResponseError(
                f"query {promql!r}: expected resultType vector or scalar, got {kind!r}"
            )
        rows = []
        for item in _list(data.get("result"), promql):
            labels = _labels(item, promql)
            t, v = _sample(item.get("value"), promql)
            rows.append((labels, [t], [v]))
        return _result(promql, rows, data)

    def server_time(self) -> float:
        """Prometheus' own clock (unix seconds): `time()` evaluated at the server's now."""
        data = self._get("/api/v1/query", {"query": "time()"}, "time()")
        if data.get("resultType") != "scalar":
            raise BadResponseError(f"time(): expected a scalar, got {data.get('resultType')!r}")
        _, v = _sample(data.get("result"), "time()")
        if not math.isfinite(v):
            raise BadResponseError(f"time(): not a finite time: {v!r}")
        return v

    def query_range(self, promql: str, *, start: float, end: float, step: float) -> Result:
        """A range query over [start, end] every `step` seconds; matrix results."""
        if not end > start or not step > 0:
            raise errors.InvalidInputError(
                f"range query needs end > start and step > 0 (start={start}, end={end}, step={step})"
            )
        params = {
            "query": promql,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step:g}",
        }
        data = self._get("/api/v1/query_range", params, promql)
        if data.get("resultType") != "matrix":
            raise BadResponseError(
                f"range query {promql!r}: expected resultType matrix, got {data.get('resultType')!r}"
            )
        rows = []
        for item in _list(data.get("result"), promql):
            labels = _labels(item, promql)
            pairs = [_sample(p, promql) for p in _list(item.get("values"), promql)]
            rows.append((labels, [p[0] for p in pairs], [p[1] for p in pairs]))
        return _result(promql, rows, data)

    def _get(self, path: str, params: Mapping[str, str], promql: str) -> dict[str, Any]:
        try:
            response = self._http.get(path, params=params)
        except httpx.TransportError as e:  # refused, timed out, reset, cut off mid-answer
            raise UnreachableError(
                f"Prometheus at {self.base_url} is unreachable ({type(e).__name__}: {e}); "
                "check --prometheus-url and that the server is up",
                retry_after=5.0,
            ) from e
        try:
            body = response.json()
        except ValueError as e:
            raise BadResponseError(
                f"{self.base_url}{path} answered HTTP {response.status_code} with a body that is "
                f"not JSON ({response.text[:120]!r}); is this a Prometheus server?"
            ) from e
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise BadResponseError(
                f"{self.base_url}{path}: not a Prometheus API response (no status field)"
            )
        if body["status"] == "error":
            raise QueryError(
                f"Prometheus refused {promql!r} (HTTP {response.status_code}, "
                f"{body.get('errorType', '?')}): {body.get('error', 'no message')}"
            )
        if response.status_code != httpx.codes.OK:
            raise BadResponseError(f"{self.base_url}{path}: HTTP {response.status_code}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise BadResponseError(f"query {promql!r}: response has no data object")
        data["_warnings"] = body.get("warnings") or []
        return data


def _list(value: object, promql: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadResponseError(f"query {promql!r}: expected a list, got {type(value).__name__}")
    return value


def _labels(item: object, promql: str) -> dict[str, str]:
    if not isinstance(item, dict) or not isinstance(item.get("metric"), dict):
        raise BadResponseError(f"query {promql!r}: a result has no metric labels")
    return {str(k): str(v) for k, v in item["metric"].items()}


def _sample(pair: object, promql: str) -> tuple[float, float]:
    """A `[time, "value"]` pair; NaN/±Inf values come back as NaN (missing)."""
    if not isinstance(pair, list) or len(pair) != 2:
        raise BadResponseError(f"query {promql!r}: a sample is not a [time, value] pair: {pair!r}")
    try:
        t = float(pair[0])
        v = float(pair[1])
    except (TypeError, ValueError) as e:
        raise BadResponseError(f"query {promql!r}: a sample is not numeric: {pair!r}") from e
    if not math.isfinite(t):
        raise BadResponseError(f"query {promql!r}: a sample has a non-finite time: {pair!r}")
    return t, v


def _result(
    promql: str, rows: list[tuple[dict[str, str], list[float], list[float]]], data: dict[str, Any]
) -> Result:
    out: list[LabeledSeries] = []
    notes: list[str] = []
    for labels, times, values in rows:
        v = np.array(values, dtype=np.float64)
        bad = ~np.isfinite(v)
        n_bad = int(bad.sum())
        if n_bad:
            v[bad] = np.nan
            name = labels.get("__name__", "")
            ident = ",".join(f"{k}={labels[k]}" for k in sorted(labels) if k != "__name__")
            notes.append(
                f"{name}{{{ident}}}: {n_bad} of {len(v)} samples were NaN/Inf, treated as missing"
            )
        out.append(
            LabeledSeries(labels=labels, samples=series.Series.of(times, v), non_finite=n_bad)
        )
    return Result(
        query=promql,
        series=tuple(out),
        warnings=tuple(str(w) for w in data.get("_warnings", [])),
        notes=tuple(notes),
    )

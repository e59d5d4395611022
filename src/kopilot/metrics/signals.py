"""The live signals: the streams the health family reads, from a real Prometheus (docs/signals.md).

    reader = signals.Reader(prometheus.Client(url, timeout=10))
    reading = reader.read(now)          # never raises for a fault of Prometheus or of its data
    reading.streams                     # {"pod/ml/detector-3/memory_mib": Series, ...}
    reading.blind                       # why the streams cannot be trusted this cycle, or None

- One range query per stream kind per cycle, for all objects at once (`STREAMS`, the rows of
  docs/signals.md), each bounded by the client's timeout; plus one instant query of Prometheus'
  own clock (`time()`), to detect clock skew.
- Each result is split by its labels into `<where>/<subject>/<metric>` keys. A series whose labels
  do not name its object (no `pod` label, an empty one, a `/` in it, a GPU index that is not a
  number), or that names the same object as another series, is dropped with a reason.
- Each series then passes the data-quality gate (`kopilot.scaling.quality`: too short, stale,
  NaN/negative, gaps) and the stream's own bounds (a GPU above 100 % busy, a temperature of
  1000 degC): a series that fails is dropped with the reason.
- The whole reading is `blind` (no family that needs it may act this cycle) when Prometheus is
  unreachable or times out, refuses a query, is stale (its newest sample of every stream is older
  than `stale_after_s`), or its clock is more than `max_skew_s` from ours, or it returned samples
  from our future. The reason is a sentence a person can act on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kopilot.metrics import prometheus
from kopilot.model import errors, series
from kopilot.scaling import quality

_CADVISOR = 'container!="", container!="POD"'


@dataclass(frozen=True, slots=True, kw_only=True)
class Stream:
    """One row of docs/signals.md: a query for all objects, and the labels that name each one."""

    where: str
    """`pod`, `gpu` or `node`: the key's first part."""
    metric: str
    """The key's last part (`memory_mib`): what the health policy classifies."""
    query: str
    subject: tuple[str, ...]
    """The labels that name the object, in key order (`namespace`, `pod`)."""
    high: float = math.inf
    """Values above this are impossible (a series holding one is dropped)."""

    def describe(self) -> str:
        return f"{self.where}/<{'>/<'.join(self.subject)}>/{self.metric}"


STREAMS: tuple[Stream, ...] = (
    Stream(
        where="pod",
        metric="memory_mib",
        query=f"sum by (namespace, pod) (container_memory_working_set_bytes{{{_CADVISOR}}}) / 1048576",
        subject=("namespace", "pod"),
        high=16 * 1024 * 1024,  # 16 TiB: more than any node has
    ),
    Stream(
        where="pod",
        metric="cpu_cores",
        query=f"sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{{_CADVISOR}}}[2m]))",
        subject=("namespace", "pod"),
        high=4096.0,
    ),
    Stream(
        where="pod",
        metric="latency_ms",
        query="1000 * histogram_quantile(0.99, sum by (namespace, pod, le) "
        "(rate(kopilot_serving_request_duration_seconds_bucket[2m])))",
        subject=("namespace", "pod"),
        high=86_400_000.0,  # a day
    ),
    Stream(
        where="service",
        metric="latency_ms",
        # Per service (the `service` label a ServiceMonitor scrape adds): the stream outlives
        # the pods a rollout replaces, so a new version's regression shows against the old one.
        query="1000 * histogram_quantile(0.99, sum by (namespace, service, le) "
        "(rate(kopilot_serving_request_duration_seconds_bucket[2m])))",
        subject=("namespace", "service"),
        high=86_400_000.0,
    ),
    Stream(
        where="pod",
        metric="errors_per_min",
        query="60 * sum by (namespace, pod) (rate(kopilot_serving_request_failures_total[2m]))",
        subject=("namespace", "pod"),
    ),
    Stream(
        where="pod",
        metric="requests_per_s",
        query="sum by (namespace, pod) (rate(kopilot_serving_requests_total[2m]))",
        subject=("namespace", "pod"),
    ),
    Stream(
        where="gpu",
        metric="utilization",
        query="max by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL) / 100",
        subject=("Hostname", "gpu"),
        high=1.0,
    ),
    Stream(
        where="gpu",
        metric="memory_used_mib",
        query="max by (Hostname, gpu) (DCGM_FI_DEV_FB_USED)",
        subject=("Hostname", "gpu"),
        high=1024 * 1024,  # 1 TiB of GPU memory: no GPU has it
    ),
    Stream(
        where="gpu",
        metric="temperature_c",
        query="max by (Hostname, gpu) (DCGM_FI_DEV_GPU_TEMP)",
        subject=("Hostname", "gpu"),
        high=200.0,
    ),
    Stream(
        where="gpu",
        metric="xid_per_min",
        # dcgm-exporter's XID counter where it is enabled (DCGM_EXP_XID_ERRORS_TOTAL, one series
        # per XID code), else the changes of DCGM_FI_DEV_XID_ERRORS (the last XID code seen: a
        # last-value gauge, so two equal XIDs in a row count once: a lower bound).
        query="60 * sum by (Hostname, gpu) (rate(DCGM_EXP_XID_ERRORS_TOTAL[5m])) "
        "or on (Hostname, gpu) "
        "max by (Hostname, gpu) (changes(DCGM_FI_DEV_XID_ERRORS[2m])) / 2",
        subject=("Hostname", "gpu"),
        high=60_000.0,
    ),
    Stream(
        where="node",
        metric="errors_per_min",
        query="60 * sum by (node) (rate(kopilot_serving_request_failures_total[2m]) "
        "* on (namespace, pod) group_left (node) kube_pod_info)",
        subject=("node",),
    ),
)
"""Every stream kind the live loop reads: the rows of docs/signals.md."""

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
"""What a Kubernetes object name (or a node's hostname) may look like."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    history_s: float = 3600.0
    """How far back each range query reads."""
    step_s: float = 60.0
    stale_after_s: float = 300.0
    """Prometheus is stale when the newest sample of every stream is older than this."""
    max_skew_s: float | None = 60.0
    """Prometheus' clock may differ from ours by this much (None: not checked)."""
    streams: tuple[Stream, ...] = STREAMS
    gate: quality.QualitySettings = field(
        # A steady gauge (a GPU's temperature, a pod's memory) is normal here, so the gate's
        # flat-line test, meant for demand, is off; the rest of the gate holds.
        default_factory=lambda: quality.QualitySettings(flat_steps=1 << 30)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """What one read found: the streams that passed, what was dropped and why, and whether the
    whole reading may be trusted at all."""

    time: float
    streams: Mapping[str, series.Series] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    """One line per series left out, with the reason."""
    blind: str | None = None
    """Why no family may act on these signals this cycle (None: they may)."""
    skew_s: float | None = None
    """Prometheus' clock minus ours, when it was read."""
    queries: int = 0
    """Queries sent this read."""


class Reader:
    """Reads every stream of `settings.streams` through `client` (see the module docstring)."""

    def __init__(self, client: prometheus.Client, settings: Settings | None = None) -> None:
        self.client = client
        self.settings = settings or Settings()

    def read(self, now: float) -> Reading:
        s = self.settings
        queries = 0
        skew: float | None = None
        try:
            if s.max_skew_s is not None:
                queries += 1
                skew = self.client.server_time() - now
                if abs(skew) > s.max_skew_s:
                    return _blind(
                        now,
                        f"clock skew: Prometheus' clock is {skew:+.0f} s from ours (max "
                        f"{s.max_skew_s:.0f} s); fix NTP on either side",
                        skew,
                        queries,
                    )
            results: list[tuple[Stream, prometheus.Result]] = []
            for stream in s.streams:
                queries += 1
                results.append(
                    (
                        stream,
                        self.client.query_range(
                            stream.query, start=now - s.history_s, end=now, step=s.step_s
                        ),
                    )
                )
        except prometheus.UnreachableError as e:
            return _blind(now, f"Prometheus unreachable or timed out: {e}", skew, queries)
        except errors.KopilotError as e:
            return _blind(now, f"Prometheus query failed: {e}", skew, queries)
        return self._split(now, results, skew, queries)

    def _split(
        self,
        now: float,
        results: Sequence[tuple[Stream, prometheus.Result]],
        skew: float | None,
        queries: int,
    ) -> Reading:
        s = self.settings
        streams: dict[str, series.Series] = {}
        dropped: list[str] = []
        newest = -math.inf
        for stream, result in results:
            by_key: dict[str, list[prometheus.LabeledSeries]] = {}
            for found in result.series:
                key, unnamed = _key(stream, found.labels)
                if key is None:
                    dropped.append(f"{stream.metric} {_show(found.labels)}: {unnamed}; dropped")
                    continue
                by_key.setdefault(key, []).append(found)
            for key, found_all in sorted(by_key.items()):
                if len(found_all) > 1:
                    dropped.append(
                        f"{key}: {len(found_all)} series name this object "
                        f"({', '.join(_show(f.labels) for f in found_all)}); dropped, not guessed"
                    )
                    continue
                samples = found_all[0].samples
                if len(samples):
                    newest = max(newest, float(samples.times[-1]))
                fault = _fault(stream, samples, now, s)
                if fault is not None:
                    dropped.append(f"{key}: {fault}; dropped")
                    continue
                streams[key] = samples
        if newest > now + s.step_s:
            return _blind(
                now,
                f"clock skew: Prometheus returned samples {newest - now:.0f} s in our future",
                skew,
                queries,
            )
        if newest > -math.inf and now - newest > s.stale_after_s:
            return _blind(
                now,
                f"Prometheus is stale: its newest sample of any stream is {now - newest:.0f} s "
                f"old (max {s.stale_after_s:.0f} s); are its scrapes failing?",
                skew,
                queries,
            )
        return Reading(
            time=now,
            streams=streams,
            dropped=tuple(dropped),
            skew_s=skew,
            queries=queries,
        )


def _blind(now: float, why: str, skew: float | None, queries: int) -> Reading:
    return Reading(time=now, blind=why, skew_s=skew, queries=queries)


def _key(stream: Stream, labels: Mapping[str, str]) -> tuple[str | None, str]:
    """The stream key a series' labels name, or None and why not."""
    parts: list[str] = []
    for name in stream.subject:
        value = labels.get(name, "")
        if not value:
            return None, f"no `{name}` label (it names the {stream.where})"
        ok = value.isdigit() if name == "gpu" else bool(_NAME.match(value))
        if not ok:
            return None, f"`{name}` label {value!r} is not a valid {name}"
        parts.append(value)
    return f"{stream.where}/{'/'.join(parts)}/{stream.metric}", ""


def _fault(stream: Stream, samples: series.Series, now: float, s: Settings) -> str | None:
    """Why a series may not reach a policy, or None."""
    if len(samples) and float(samples.times[-1]) > now + s.step_s:
        return f"samples from the future (newest at {float(samples.times[-1]) - now:+.0f} s)"
    values = samples.values
    finite = values[np.isfinite(values)]
    high = int(np.count_nonzero(finite > stream.high))
    if high:
        return f"{high} impossible value(s) above {stream.high:g} (max {float(finite.max()):g})"
    verdict = quality.check(samples, now, s.step_s, s.gate, what=stream.metric)
    if not verdict.ok:
        return f"data-quality gate: {verdict.summary}"
    return None


def _show(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v!r}" for k, v in sorted(labels.items())) + "}"

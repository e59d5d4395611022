"""kopilot as a KEDA external scaler: the forecast drives a ScaledObject over gRPC.

KEDA calls four RPCs (`externalscaler.proto`): `IsActive` / `StreamIsActive` (should the workload
run at all), `GetMetricSpec` (the metric and its per-replica target) and `GetMetrics` (the value).
kopilot reports one metric, `kopilot-replicas`, with a target of 1 per replica: its value *is* the
planned replica count of `kopilot.scaling.planning`, so KEDA's HPA (AverageValue) sets
replicas = ceil(value / 1). The forecast, the cold-start lead, the reactive floor and the
data-quality gate all live in the plan.

ScaledObject trigger metadata (`scalerMetadata`):

| key | meaning | default |
|---|---|---|
| `service` | demand series to read (`namespace/name`) | the ScaledObject's namespace/name |
| `capacityRps` | requests/s one ready replica serves within the SLO | required |
| `coldStartSeconds` | creation-to-ready time to plan for | 60 |
| `minReplicas` / `maxReplicas` | bounds of the plan | 0 / 100 |

Missing or garbage demand never scales to zero: the gate holds the last plan (or raises it to
what the last good sample needs) and `IsActive` stays true. Bad metadata is an INVALID_ARGUMENT
error naming the key; a failing demand source is logged and treated as missing data. The server
keeps serving either way.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from kopilot.kits import clocks
from kopilot.model import cluster, errors, series
from kopilot.scaling import planning
from kopilot.scaling.keda import externalscaler_pb2 as pb
from kopilot.scaling.keda import externalscaler_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

METRIC_NAME = "kopilot-replicas"


class DemandSource(Protocol):
    """Where the scaler reads a service's request-rate history (req/s, times in s)."""

    def demand(self, service: str, now: float) -> series.Series | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What one ScaledObject asks kopilot to plan, parsed from its trigger metadata."""

    key: str
    capacity_rps: float
    cold_start_s: float
    min_replicas: int
    max_replicas: int


def _number(meta: Mapping[str, str], key: str, default: float | None) -> float:
    raw = meta.get(key)
    if raw is None or raw.strip() == "":
        if default is None:
            raise errors.InvalidInputError(f"scalerMetadata.{key} is required")
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise errors.InvalidInputError(f"scalerMetadata.{key} is {raw!r}, not a number") from e
    if not math.isfinite(value) or value < 0:
        raise errors.InvalidInputError(
            f"scalerMetadata.{key} is {raw!r}; it must be >= 0 and finite"
        )
    return value


def parse_target(name: str, namespace: str, meta: Mapping[str, str]) -> Target:
    """Read a ScaledObject's metadata; InvalidInputError names the bad key."""
    if not name:
        raise errors.InvalidInputError("scaledObjectRef.name is empty")
    key = meta.get("service") or f"{namespace or 'default'}/{name}"
    if "/" not in key:
        key = f"{namespace or 'default'}/{key}"
    capacity = _number(meta, "capacityRps", None)
    if capacity <= 0:
        raise errors.InvalidInputError("scalerMetadata.capacityRps must be > 0")
    lo = _number(meta, "minReplicas", 0)
    hi = _number(meta, "maxReplicas", 100)
    if lo != int(lo) or hi != int(hi) or hi < lo or hi < 1:
        raise errors.InvalidInputError(
            f"scalerMetadata minReplicas={lo:g}, maxReplicas={hi:g}: need whole numbers, "
            "1 <= maxReplicas, minReplicas <= maxReplicas"
        )
    return Target(
        key=key,
        capacity_rps=capacity,
        cold_start_s=_number(meta, "coldStartSeconds", 60.0),
        min_replicas=int(lo),
        max_replicas=int(hi),
    )


@dataclass(slots=True)
class _Memory:
    state: planning.ServiceState = field(default_factory=planning.ServiceState)
    replicas: int | None = None


class Scaler:
    """The planning side of the server: thread-safe, one remembered plan per service."""

    def __init__(
        self,
        source: DemandSource,
        clock: clocks.Clock,
        settings: planning.PlanSettings | None = None,
    ) -> None:
        self._source = source
        self._clock = clock
        self._settings = settings or planning.PlanSettings()
        self._memory: dict[str, _Memory] = {}
        self._lock = threading.Lock()

    def plan(self, target: Target) -> planning.Plan:
        now = self._clock.now()
        try:
            history = self._source.demand(target.key, now)
        except Exception as e:  # a source failing is missing data, never a crash of the server
            log.warning("demand source failed for %s: %s", target.key, e)
            history = None
        with self._lock:
            mem = self._memory.setdefault(target.key, _Memory())
            current = mem.replicas if mem.replicas is not None else target.min_replicas
            svc = cluster.ModelService(
                name=target.key.split("/", 1)[1],
                namespace=target.key.split("/", 1)[0],
                replicas=current,
                ready_replicas=current,
                capacity_rps=target.capacity_rps,
                cold_start_s=target.cold_start_s,
                min_replicas=target.min_replicas,
                max_replicas=target.max_replicas,
            )
            try:
                plan, mem.state = planning.plan_service(
                    svc, history, mem.state, now, self._settings
                )
            except Exception as e:  # a bug in planning must not take the scaler down: hold
                log.exception("planning failed for %s", target.key)
                plan = planning.Plan(
                    replicas=max(current, 1),
                    reason=f"planning failed ({type(e).__name__}); holding",
                    evidence={},
                    gated=True,
                )
            mem.replicas = plan.replicas
        return plan

    def active(self, target: Target) -> bool:
        plan = self.plan(target)
        return plan.replicas > 0 or plan.gated


class Servicer(pb_grpc.ExternalScalerServicer):
    """The four RPCs of `externalscaler.ExternalScaler`."""

    def __init__(
        self, scaler: Scaler, *, stream_interval_s: float = 5.0, stop: threading.Event | None = None
    ) -> None:
        self._scaler = scaler
        self._interval = stream_interval_s
        self._stop = stop or threading.Event()

    def _target(self, ref: Any, context: grpc.ServicerContext) -> Target:
        try:
            return parse_target(ref.name, ref.namespace, dict(ref.scalerMetadata))
        except errors.InvalidInputError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise  # abort raises; this keeps type checkers sure the function never falls through

    def IsActive(self, request: Any, context: grpc.ServicerContext) -> Any:
        target = self._target(request, context)
        return pb.IsActiveResponse(result=self._scaler.active(target))

    def StreamIsActive(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        target = self._target(request, context)
        while context.is_active() and not self._stop.is_set():
            yield pb.IsActiveResponse(result=self._scaler.active(target))
            if self._stop.wait(self._interval):
                break

    def GetMetricSpec(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._target(request, context)
        spec = pb.MetricSpec(metricName=METRIC_NAME, targetSize=1, targetSizeFloat=1.0)
        return pb.GetMetricSpecResponse(metricSpecs=[spec])

    def GetMetrics(self, request: Any, context: grpc.ServicerContext) -> Any:
        target = self._target(request.scaledObjectRef, context)
        plan = self._scaler.plan(target)
        log.info("%s -> %d replicas: %s", target.key, plan.replicas, plan.reason)
        value = pb.MetricValue(
            metricName=request.metricName or METRIC_NAME,
            metricValue=plan.replicas,
            metricValueFloat=float(plan.replicas),
        )
        return pb.GetMetricsResponse(metricValues=[value])


@dataclass(slots=True)
class Running:
    """A started server: its bound port, and how to stop it."""

    server: grpc.Server
    port: int
    stop_event: threading.Event

    def stop(self, grace: float | None = 1.0) -> None:
        self.stop_event.set()
        self.server.stop(grace).wait()


def start(
    scaler: Scaler,
    address: str = "127.0.0.1:0",
    *,
    max_workers: int = 8,
    stream_interval_s: float = 5.0,
) -> Running:
    """Start serving on `address` (port 0 picks a free one); returns the running server."""
    stop = threading.Event()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    pb_grpc.add_ExternalScalerServicer_to_server(  # type: ignore[no-untyped-call]
        Servicer(scaler, stream_interval_s=stream_interval_s, stop=stop), server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise errors.PermanentError(f"cannot bind the scaler to {address}")
    server.start()
    return Running(server=server, port=port, stop_event=stop)

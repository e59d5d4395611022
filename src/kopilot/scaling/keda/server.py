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
| `service` | demand series to read (`namespace/name`, or `name` in the ScaledObject's namespace) | the ScaledObject's namespace/name |
| `capacityRps` | requests/s one ready replica serves within the SLO | required |
| `coldStartSeconds` | creation-to-ready time to plan for (at most 3600) | 60 |
| `minReplicas` / `maxReplicas` | bounds of the plan (at most 2^31 - 1, the HPA's int32) | 0 / 100 |

The plan's state is kept per ScaledObject (its namespace and name), never per `service`: two
ScaledObjects reading the same series plan independently. `service` must be Kubernetes names
(lowercase DNS labels), so it cannot name a path outside `--demand-dir`.

Missing or garbage demand never scales to zero: the gate holds the last plan (or raises it to
what the last good sample needs) and `IsActive` stays true. Bad metadata is an INVALID_ARGUMENT
error naming the key; a failing demand source is logged and treated as missing data. The server
keeps serving either way.

The server is `grpc.aio`: a `StreamIsActive` stream (KEDA's `external-push` trigger holds one
per ScaledObject for as long as it exists) is a coroutine asleep between messages, not a worker
thread, so open streams never starve `GetMetrics` and `IsActive`. Plans are computed in a
thread pool for the unary calls and a separate one-thread pool for stream messages (fewer threads taking turns on the GIL with the event loop that answers the probes); past
`max_streams` open streams a new one gets RESOURCE_EXHAUSTED. The standard
`grpc.health.v1.Health` service answers Kubernetes' gRPC probes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import grpc
from grpc import aio

from kopilot.kits import clocks
from kopilot.model import cluster, errors, series
from kopilot.scaling import planning
from kopilot.scaling.keda import externalscaler_pb2 as pb
from kopilot.scaling.keda import externalscaler_pb2_grpc as pb_grpc
from kopilot.scaling.keda import health_pb2 as health_pb
from kopilot.scaling.keda import health_pb2_grpc as health_grpc

log = logging.getLogger(__name__)

METRIC_NAME = "kopilot-replicas"
MAX_REPLICAS = 2**31 - 1
"""The HPA's maxReplicas is an int32."""
MAX_COLD_START_S = 3600.0
"""The forecast horizon grows with the cold start; past an hour the plan is not a forecast."""
MAX_CAPACITY_RPS = 1e9
MAX_TARGETS = 10_000
"""ScaledObjects whose plan state is kept; the least recently asked about is forgotten first
(it plans again from its history, as after a restart)."""
MAX_STREAMS = 1_000
"""Open StreamIsActive streams (one per `external-push` ScaledObject)."""
MAX_MESSAGE_BYTES = 1 << 20
"""A ScaledObjectRef is a few hundred bytes; gRPC's default would take 4 MiB per call."""
SERVICE_NAME = "externalscaler.ExternalScaler"

_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_NAMESPACE = re.compile(rf"^{_LABEL}$")
_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


class DemandSource(Protocol):
    """Where the scaler reads a service's request-rate history (req/s, times in s)."""

    def demand(self, service: str, now: float) -> series.Series | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What one ScaledObject asks kopilot to plan, parsed from its trigger metadata."""

    key: str
    """The ScaledObject, `namespace/name`: its plan state is kept under this key."""
    service: str
    """The demand series to read, `namespace/name` (Kubernetes names: no path can escape)."""
    capacity_rps: float
    cold_start_s: float
    min_replicas: int
    max_replicas: int


def _number(meta: Mapping[str, str], key: str, default: float | None, *, most: float) -> float:
    raw = meta.get(key)
    if raw is None or raw.strip() == "":
        if default is None:
            raise errors.InvalidInputError(f"scalerMetadata.{key} is required")
        return default
    shown = repr(raw) if len(raw) <= 40 else repr(raw[:37] + "...")
    try:
        value = float(raw)
    except ValueError as e:
        raise errors.InvalidInputError(f"scalerMetadata.{key} is {shown}, not a number") from e
    if not math.isfinite(value) or value < 0 or value > most:
        raise errors.InvalidInputError(
            f"scalerMetadata.{key} is {shown}; it must be a number from 0 to {most:.0f}"
        )
    return value


def _service(meta: Mapping[str, str], namespace: str, name: str) -> str:
    raw = meta.get("service") or name
    where, slash, what = raw.rpartition("/")
    where = where or ("" if slash else namespace)  # "/abs" names no namespace: refused
    if not (_NAMESPACE.match(where) and _NAME.match(what) and len(what) <= 253):
        shown = repr(raw) if len(raw) <= 80 else repr(raw[:77] + "...")
        raise errors.InvalidInputError(
            f"scalerMetadata.service is {shown}; give namespace/name (or name) as Kubernetes "
            "names: lowercase letters, digits, '-' and '.', no '/' or '..'"
        )
    return f"{where}/{what}"


def parse_target(name: str, namespace: str, meta: Mapping[str, str]) -> Target:
    """Read a ScaledObject's metadata; InvalidInputError names the bad key."""
    namespace = namespace or "default"
    if not name:
        raise errors.InvalidInputError("scaledObjectRef.name is empty")
    if not _NAME.match(name) or len(name) > 253 or not _NAMESPACE.match(namespace):
        raise errors.InvalidInputError(
            f"scaledObjectRef {namespace[:63]!r}/{name[:253]!r} is not a Kubernetes namespace/name"
        )
    capacity = _number(meta, "capacityRps", None, most=MAX_CAPACITY_RPS)
    if capacity <= 0:
        raise errors.InvalidInputError("scalerMetadata.capacityRps must be > 0")
    lo = _number(meta, "minReplicas", 0, most=MAX_REPLICAS)
    hi = _number(meta, "maxReplicas", 100, most=MAX_REPLICAS)
    if lo != int(lo) or hi != int(hi) or hi < lo or hi < 1:
        raise errors.InvalidInputError(
            f"scalerMetadata minReplicas={lo:g}, maxReplicas={hi:g}: need whole numbers, "
            "1 <= maxReplicas, minReplicas <= maxReplicas"
        )
    return Target(
        key=f"{namespace}/{name}",
        service=_service(meta, namespace, name),
        capacity_rps=capacity,
        cold_start_s=_number(meta, "coldStartSeconds", 60.0, most=MAX_COLD_START_S),
        min_replicas=int(lo),
        max_replicas=int(hi),
    )


@dataclass(slots=True)
class _Memory:
    state: planning.ServiceState = field(default_factory=planning.ServiceState)
    replicas: int | None = None


class Scaler:
    """The planning side of the server: thread-safe, one remembered plan per ScaledObject."""

    def __init__(
        self,
        source: DemandSource,
        clock: clocks.Clock,
        settings: planning.PlanSettings | None = None,
        *,
        max_targets: int = MAX_TARGETS,
    ) -> None:
        self._source = source
        self._clock = clock
        self._settings = settings or planning.PlanSettings()
        self._memory: OrderedDict[str, _Memory] = OrderedDict()
        self._max_targets = max_targets
        self._lock = threading.Lock()

    def plan(self, target: Target) -> planning.Plan:
        now = self._clock.now()
        try:
            history = self._source.demand(target.service, now)
        except Exception as e:  # a source failing is missing data, never a crash of the server
            log.warning("demand source failed for %s (%s): %s", target.key, target.service, e)
            history = None
        with self._lock:
            mem = self._memory.get(target.key)
            if mem is None:
                mem = self._memory[target.key] = _Memory()
                while len(self._memory) > self._max_targets:
                    self._memory.popitem(last=False)
            self._memory.move_to_end(target.key)
            current = mem.replicas if mem.replicas is not None else target.min_replicas
            namespace, _, name = target.key.partition("/")
            svc = cluster.ModelService(
                name=name,
                namespace=namespace,
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
                    replicas=min(max(current, 1), target.max_replicas),
                    reason=f"planning failed ({type(e).__name__}); holding",
                    evidence={},
                    gated=True,
                )
            mem.replicas = plan.replicas
        return plan

    def active(self, target: Target) -> bool:
        plan = self.plan(target)
        return plan.replicas > 0 or plan.gated

    def targets(self) -> int:
        """How many ScaledObjects have plan state."""
        with self._lock:
            return len(self._memory)


T = TypeVar("T")


class Servicer(pb_grpc.ExternalScalerServicer):
    """The four RPCs of `externalscaler.ExternalScaler`, as coroutines."""

    def __init__(
        self,
        scaler: Scaler,
        *,
        stream_interval_s: float = 5.0,
        stop: asyncio.Event,
        unary_pool: futures.Executor,
        stream_pool: futures.Executor,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        self._scaler = scaler
        self._interval = stream_interval_s
        self._stop = stop
        self._unary = unary_pool
        self._streaming = stream_pool
        self._max_streams = max_streams
        self.streams = 0

    async def _target(self, ref: Any, context: aio.ServicerContext[Any, Any]) -> Target:
        if ref is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _CORRUPT)
        try:
            return parse_target(ref.name, ref.namespace, dict(ref.scalerMetadata))
        except errors.InvalidInputError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise  # abort raises; this keeps type checkers sure the function never falls through

    async def _run(self, pool: futures.Executor, fn: Callable[[Target], T], target: Target) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, target)

    async def IsActive(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        target = await self._target(request, context)
        return pb.IsActiveResponse(result=await self._run(self._unary, self._scaler.active, target))

    async def StreamIsActive(
        self, request: Any, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        target = await self._target(request, context)
        if self.streams >= self._max_streams:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.streams} StreamIsActive streams are open (the limit); retry later",
            )
        self.streams += 1
        try:
            while not self._stop.is_set():
                active = await self._run(self._streaming, self._scaler.active, target)
                yield pb.IsActiveResponse(result=active)
                try:
                    await asyncio.wait_for(self._stop.wait(), self._interval)
                except TimeoutError:
                    continue
        finally:
            self.streams -= 1

    async def GetMetricSpec(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await self._target(request, context)
        spec = pb.MetricSpec(metricName=METRIC_NAME, targetSize=1, targetSizeFloat=1.0)
        return pb.GetMetricSpecResponse(metricSpecs=[spec])

    async def GetMetrics(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        target = await self._target(None if request is None else request.scaledObjectRef, context)
        plan = await self._run(self._unary, self._scaler.plan, target)
        log.info("%s -> %d replicas: %s", target.key, plan.replicas, plan.reason)
        value = pb.MetricValue(
            metricName=(request.metricName or METRIC_NAME)[:256],
            metricValue=plan.replicas,
            metricValueFloat=float(plan.replicas),
        )
        return pb.GetMetricsResponse(metricValues=[value])


class Health(health_grpc.HealthServicer):
    """`grpc.health.v1.Health`: SERVING for the server ("") and the scaler service while it
    runs (answered in the event loop: a probe never waits for a plan)."""

    KNOWN = frozenset({"", SERVICE_NAME})

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop

    def _status(self, service: str) -> health_pb.HealthCheckResponse.ServingStatus:
        if service not in self.KNOWN:
            return health_pb.HealthCheckResponse.SERVICE_UNKNOWN
        if self._stop.is_set():
            return health_pb.HealthCheckResponse.NOT_SERVING
        return health_pb.HealthCheckResponse.SERVING

    async def Check(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        if request is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _CORRUPT)
        if request.service not in self.KNOWN:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb.HealthCheckResponse(status=self._status(request.service))

    async def List(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        return health_pb.HealthListResponse(
            statuses={s: health_pb.HealthCheckResponse(status=self._status(s)) for s in self.KNOWN}
        )

    async def Watch(
        self, request: Any, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        if request is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _CORRUPT)
        yield health_pb.HealthCheckResponse(status=self._status(request.service))
        await self._stop.wait()
        yield health_pb.HealthCheckResponse(status=self._status(request.service))


_CORRUPT = "the request is not a valid protobuf message of this method's type"


def _lenient(kind: Any) -> Callable[[bytes], Any]:
    """`kind`'s parser that answers None for bytes that are not one (the handler then answers
    INVALID_ARGUMENT; gRPC's own would answer UNKNOWN for the client's mistake)."""

    def parse(raw: bytes) -> Any:
        try:
            return kind.FromString(raw)
        except Exception:  # protobuf's DecodeError (google.protobuf has no type stubs here)
            return None

    return parse


def _handlers(scaler: Servicer, health: Health) -> list[grpc.GenericRpcHandler]:
    """The two services' method handlers (what the generated `add_*_to_server` register, with
    lenient request parsers)."""
    ref, metrics = _lenient(pb.ScaledObjectRef), _lenient(pb.GetMetricsRequest)
    check = _lenient(health_pb.HealthCheckRequest)
    out = grpc.unary_unary_rpc_method_handler
    stream = grpc.unary_stream_rpc_method_handler
    return [
        grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "IsActive": out(
                    scaler.IsActive,
                    request_deserializer=ref,
                    response_serializer=pb.IsActiveResponse.SerializeToString,
                ),
                "StreamIsActive": stream(
                    scaler.StreamIsActive,
                    request_deserializer=ref,
                    response_serializer=pb.IsActiveResponse.SerializeToString,
                ),
                "GetMetricSpec": out(
                    scaler.GetMetricSpec,
                    request_deserializer=ref,
                    response_serializer=pb.GetMetricSpecResponse.SerializeToString,
                ),
                "GetMetrics": out(
                    scaler.GetMetrics,
                    request_deserializer=metrics,
                    response_serializer=pb.GetMetricsResponse.SerializeToString,
                ),
            },
        ),
        grpc.method_handlers_generic_handler(
            "grpc.health.v1.Health",
            {
                "Check": out(
                    health.Check,
                    request_deserializer=check,
                    response_serializer=health_pb.HealthCheckResponse.SerializeToString,
                ),
                "List": out(
                    health.List,
                    request_deserializer=_lenient(health_pb.HealthListRequest),
                    response_serializer=health_pb.HealthListResponse.SerializeToString,
                ),
                "Watch": stream(
                    health.Watch,
                    request_deserializer=check,
                    response_serializer=health_pb.HealthCheckResponse.SerializeToString,
                ),
            },
        ),
    ]


@dataclass(slots=True)
class Running:
    """A started server (its event loop runs in a thread of its own): its port, and how to stop
    it."""

    port: int
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    server: aio.Server
    stop_event: asyncio.Event
    servicer: Servicer

    done: asyncio.Event

    def stop(self, grace: float | None = 1.0) -> None:
        async def _stop() -> None:
            self.stop_event.set()
            try:
                await self.server.stop(grace)
            finally:
                self.done.set()

        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(timeout=(grace or 0) + 10)
        self.thread.join(timeout=10)


def start(
    scaler: Scaler,
    address: str = "127.0.0.1:0",
    *,
    max_workers: int = 8,
    stream_workers: int = 1,
    stream_interval_s: float = 5.0,
    max_streams: int = MAX_STREAMS,
) -> Running:
    """Start serving on `address` (port 0 picks a free one) in a thread running its own event
    loop; returns the running server once it listens."""
    ready: futures.Future[Running] = futures.Future()

    async def serve() -> None:
        stop = asyncio.Event()
        unary = futures.ThreadPoolExecutor(max_workers, thread_name_prefix="scaler-plan")
        streaming = futures.ThreadPoolExecutor(stream_workers, thread_name_prefix="scaler-stream")
        server = aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared port
            ]
        )
        servicer = Servicer(
            scaler,
            stream_interval_s=stream_interval_s,
            stop=stop,
            unary_pool=unary,
            stream_pool=streaming,
            max_streams=max_streams,
        )
        server.add_generic_rpc_handlers(_handlers(servicer, Health(stop)))
        failure: Exception | None = None
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as e:
            port, failure = 0, e
        if port == 0:
            ready.set_exception(
                errors.PermanentError(f"cannot bind the scaler to {address}: {failure or 'in use'}")
            )
            return
        await server.start()
        done = asyncio.Event()
        ready.set_result(
            Running(
                port=port,
                thread=threading.current_thread(),
                loop=asyncio.get_running_loop(),
                server=server,
                stop_event=stop,
                servicer=servicer,
                done=done,
            )
        )
        try:
            await done.wait()
        finally:
            unary.shutdown(wait=False, cancel_futures=True)
            streaming.shutdown(wait=False, cancel_futures=True)

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as e:  # the loop died before it was ready: the caller hears why
            if not ready.done():
                ready.set_exception(e)
            else:
                raise

    threading.Thread(target=run, name="keda-scaler", daemon=True).start()
    return ready.result(timeout=30)

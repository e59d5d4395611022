"""The external scaler under abuse (issue #17), over real gRPC on 127.0.0.1 with bounded loops:
no ScaledObjectRef, metadata map or byte string gets UNKNOWN or INTERNAL (only OK or
INVALID_ARGUMENT); floods, hundreds of open streams and oversize messages never keep the
health probe or the next GetMetrics from an answer (within 1 s: bench/abuse_scaler.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

grpc = pytest.importorskip("grpc")

from kopilot.kits import clocks  # noqa: E402
from kopilot.model import series  # noqa: E402
from kopilot.scaling.keda import externalscaler_pb2 as pb  # noqa: E402
from kopilot.scaling.keda import externalscaler_pb2_grpc as pb_grpc  # noqa: E402
from kopilot.scaling.keda import health_pb2, health_pb2_grpc, server  # noqa: E402

pytestmark = pytest.mark.integration

STEP = 60.0
NOW = 2000 * STEP
FINE = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}


class Source:
    """A working fake of a metrics backend: one steady series for every service."""

    def __init__(self) -> None:
        t = np.arange(0, 2000) * STEP
        self.steady = series.Series.of(t, 40 + np.random.default_rng(5).normal(0, 1, t.size))

    def demand(self, service: str, now: float) -> series.Series | None:
        return self.steady if service.endswith("/svc") else None


class Client:
    def __init__(self, port: int) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb_grpc.ExternalScalerStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def serving(self) -> bool:
        """The probe: answered SERVING (a generous timeout on a shared machine: the 1 s a
        probe allows is measured by bench/abuse_scaler.py, not asserted here)."""
        answer = self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5.0)
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    def replicas(self, name: str = "svc") -> int:
        ref = pb.ScaledObjectRef(name=name, namespace="ns", scalerMetadata={"capacityRps": "10"})
        resp = self.stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref), timeout=5.0)
        return int(resp.metricValues[0].metricValue)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    running = server.start(
        server.Scaler(Source(), clocks.VirtualClock(NOW)), "127.0.0.1:0", stream_interval_s=1.0
    )
    c = Client(running.port)
    try:
        yield c
    finally:
        c.channel.close()
        running.stop(grace=None)


def _code(call: Any, request: Any) -> grpc.StatusCode:
    try:
        result = call(request, timeout=5)
        if hasattr(result, "cancel"):  # a stream: its first message is the answer
            next(result)
            result.cancel()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


NUMBERS = st.one_of(
    st.sampled_from(
        [
            "10",
            "0",
            "-1",
            "1e300",
            "-1e300",
            "nan",
            "inf",
            "-inf",
            "1e-300",
            "2147483648",
            "2147483647",
            "3.5",
            "",
            " ",
            "0x10",
            "1_000",
            "٣",
            "10" * 50,
        ]
    ),
    st.floats().map(repr),
    st.integers().map(str),
    st.text(max_size=10),
)
KEYS = st.sampled_from(
    ["capacityRps", "coldStartSeconds", "minReplicas", "maxReplicas", "service", "scalerAddress"]
)
SERVICES = st.one_of(
    st.sampled_from(
        [
            "svc",
            "ns/svc",
            "x//abs/path",
            "a/../..",
            "/etc/passwd",
            "..",
            "ns/",
            "/",
            "NS/SVC",
            "a" * 300,
            "ns/svc.csv",
            "ns/a.b",
            "ns/-x",
            "ns\x00/svc",
            "ns/svc/extra",
        ]
    ),
    st.text(max_size=30),
)
NAMES = st.one_of(st.sampled_from(["svc", "", "a" * 300, "../x", "ns/svc"]), st.text(max_size=20))


@st.composite
def refs(draw: st.DrawFn) -> pb.ScaledObjectRef:
    meta = draw(st.dictionaries(KEYS, NUMBERS, max_size=5))
    if draw(st.booleans()):
        meta["capacityRps"] = draw(st.sampled_from(["10", "0.5", "1e9"]))
    if draw(st.booleans()):
        meta["service"] = draw(SERVICES)
    meta.update(draw(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2)))
    return pb.ScaledObjectRef(
        name=draw(NAMES),
        namespace=draw(st.sampled_from(["ns", "", "kube-system", "NS"])),
        scalerMetadata=meta,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ref=refs(), metric=st.text(max_size=300))
def test_no_scaled_object_ref_gets_unknown_or_internal(
    client: Client, ref: pb.ScaledObjectRef, metric: str
) -> None:
    stub = client.stub
    assert _code(stub.GetMetricSpec, ref) in FINE
    assert _code(stub.IsActive, ref) in FINE
    request = pb.GetMetricsRequest(scaledObjectRef=ref, metricName=metric)
    assert _code(stub.GetMetrics, request) in FINE
    assert client.serving()


METHODS = ["IsActive", "GetMetricSpec", "GetMetrics", "StreamIsActive"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(METHODS), raw=st.binary(max_size=64))
def test_no_byte_string_gets_unknown_or_internal(client: Client, method: str, raw: bytes) -> None:
    path = f"/externalscaler.ExternalScaler/{method}"
    if method == "StreamIsActive":
        call: Any = client.channel.unary_stream(path)
    else:
        call = client.channel.unary_unary(path)
    assert _code(call, raw) in FINE
    check = client.channel.unary_unary("/grpc.health.v1.Health/Check")
    assert _code(check, raw) in FINE | {grpc.StatusCode.NOT_FOUND}
    assert client.serving()


def test_an_oversize_message_is_refused_and_the_next_call_served(client: Client) -> None:
    ref = pb.ScaledObjectRef(name="svc", namespace="ns", scalerMetadata={"x": "a" * (2 << 20)})
    assert _code(client.stub.IsActive, ref) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.serving() and client.replicas() >= 4


def test_a_flood_keeps_the_probe_answered(client: Client) -> None:
    codes: list[grpc.StatusCode] = []

    def flood(k: int) -> None:
        for j in range(40):
            ref = pb.ScaledObjectRef(
                name="svc" if j % 2 else f"other{k}-{j}",
                namespace="ns",
                scalerMetadata={"capacityRps": "10"} if j % 3 else {"capacityRps": "x"},
            )
            codes.append(_code(client.stub.GetMetrics, pb.GetMetricsRequest(scaledObjectRef=ref)))

    threads = [threading.Thread(target=flood, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    probes = [client.serving() for _ in range(10)]
    for t in threads:
        t.join(timeout=60)
    assert all(probes)
    assert len(codes) == 320 and set(codes) <= FINE


def test_hundreds_of_open_streams_leave_unary_calls_and_probes_served(client: Client) -> None:
    refs = [
        pb.ScaledObjectRef(name=f"push{i}", namespace="ns", scalerMetadata={"capacityRps": "10"})
        for i in range(200)
    ]
    streams = [client.stub.StreamIsActive(r, timeout=60) for r in refs]
    try:
        assert all(next(s).result is True for s in streams[:20])
        for _ in range(5):
            assert client.serving()
            assert client.replicas() >= 4
    finally:
        for s in streams:
            s.cancel()
    assert client.serving()

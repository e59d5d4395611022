"""The external scaler holds under abuse found in issue #17: open streams never starve the unary
calls, `service` cannot leave the demand directory or reach another ScaledObject's plan, and
out-of-range metadata is INVALID_ARGUMENT."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")

from kopilot.kits import clocks  # noqa: E402
from kopilot.model import errors, series  # noqa: E402
from kopilot.scaling.keda import externalscaler_pb2 as pb  # noqa: E402
from kopilot.scaling.keda import externalscaler_pb2_grpc as pb_grpc  # noqa: E402
from kopilot.scaling.keda import health_pb2, health_pb2_grpc, server, sources  # noqa: E402

pytestmark = pytest.mark.integration

STEP = 60.0
NOW = 2000 * STEP


def _steady(level: float) -> series.Series:
    t = np.arange(0, 2000) * STEP
    return series.Series.of(t, level + np.random.default_rng(3).normal(0, level * 0.02, t.size))


class Source:
    """A working fake of a metrics backend: a dict of series."""

    def __init__(self) -> None:
        self.data: dict[str, series.Series] = {}
        self.asked: list[str] = []

    def demand(self, service: str, now: float) -> series.Series | None:
        self.asked.append(service)
        return self.data.get(service)


def _ref(name: str = "svc", namespace: str = "ns", **meta: str) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(
        name=name, namespace=namespace, scalerMetadata={"capacityRps": "10", **meta}
    )


def _replicas(stub: pb_grpc.ExternalScalerStub, ref: pb.ScaledObjectRef) -> int:
    resp = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref), timeout=5)
    return int(resp.metricValues[0].metricValue)


@pytest.fixture
def source() -> Source:
    return Source()


@pytest.fixture
def channel(source: Source) -> Iterator[grpc.Channel]:
    running = server.start(
        server.Scaler(source, clocks.VirtualClock(NOW)), "127.0.0.1:0", stream_interval_s=0.05
    )
    chan = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield chan
    finally:
        chan.close()
        running.stop(grace=None)


def test_open_streams_never_starve_get_metrics_and_is_active(
    channel: grpc.Channel, source: Source
) -> None:
    source.data["ns/svc"] = _steady(50.0)
    stub = pb_grpc.ExternalScalerStub(channel)
    streams = [stub.StreamIsActive(_ref(f"push{i}"), timeout=30) for i in range(12)]
    try:
        for s in streams:
            assert next(s).result is True  # every stream is open and served
        for _ in range(3):
            assert _replicas(stub, _ref()) >= 5
            assert stub.IsActive(_ref(), timeout=5).result is True
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for s in streams:
            s.cancel()


def test_streams_past_the_limit_are_resource_exhausted_not_hung(source: Source) -> None:
    source.data["ns/svc"] = _steady(50.0)
    running = server.start(
        server.Scaler(source, clocks.VirtualClock(NOW)),
        "127.0.0.1:0",
        stream_interval_s=0.05,
        max_streams=2,
    )
    chan = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = pb_grpc.ExternalScalerStub(chan)
    streams = [stub.StreamIsActive(_ref(f"push{i}"), timeout=30) for i in range(2)]
    try:
        for s in streams:
            next(s)
        with pytest.raises(grpc.RpcError) as err:
            next(stub.StreamIsActive(_ref("third"), timeout=5))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _replicas(stub, _ref()) >= 5
    finally:
        for s in streams:
            s.cancel()
        chan.close()
        running.stop(grace=None)


@pytest.mark.parametrize(
    ("meta", "key"),
    [
        ({"maxReplicas": "1e300"}, "maxReplicas"),
        ({"minReplicas": "1e300", "maxReplicas": "1e300"}, "minReplicas"),
        ({"coldStartSeconds": "1e300"}, "coldStartSeconds"),
        ({"capacityRps": "1e300"}, "capacityRps"),
        ({"service": "x//abs/path"}, "service"),
        ({"service": "a/../.."}, "service"),
        ({"service": "../../etc/passwd"}, "service"),
        ({"service": "/abs"}, "service"),
    ],
)
def test_out_of_range_metadata_is_invalid_argument(
    channel: grpc.Channel, meta: dict[str, str], key: str
) -> None:
    stub = pb_grpc.ExternalScalerStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=_ref(**meta)), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert key in err.value.details()


def test_a_scaledobject_elsewhere_cannot_move_another_ones_plan(
    channel: grpc.Channel, source: Source
) -> None:
    source.data["team-a/svc"] = _steady(15.0)
    stub = pb_grpc.ExternalScalerStub(channel)
    own = _ref("svc", "team-a")
    before = _replicas(stub, own)
    assert 1 <= before <= 3
    # team-b reads the same series and asks for 50 replicas of its own
    other = _ref("intruder", "team-b", service="team-a/svc", minReplicas="50", maxReplicas="50")
    assert _replicas(stub, other) == 50
    assert source.asked[-1] == "team-a/svc"
    # the series goes missing: team-a holds its own last plan, not team-b's
    del source.data["team-a/svc"]
    assert [_replicas(stub, own) for _ in range(3)] == [before] * 3


def test_the_demand_directory_is_never_left(tmp_path: Path) -> None:
    root = tmp_path / "demand"
    (root / "ns").mkdir(parents=True)
    outside = tmp_path / "secret.csv"
    outside.write_text("ts,value\n0,1\n")
    (root / "ns" / "link.csv").symlink_to(outside)
    src = sources.CsvDirectory(root)
    for service in ("ns/link", "ns/../../secret", "../secret", "ns/a/../../../secret"):
        with pytest.raises(errors.InvalidInputError):
            src.demand(service, NOW)
    assert src.demand("ns/missing", NOW) is None


def test_plan_state_is_bounded_least_recent_first(source: Source) -> None:
    scaler = server.Scaler(source, clocks.VirtualClock(NOW), max_targets=5)
    for i in range(20):
        scaler.plan(server.parse_target(f"svc{i}", "ns", {"capacityRps": "10"}))
    assert scaler.targets() == 5

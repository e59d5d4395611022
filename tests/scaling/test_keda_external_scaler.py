"""The KEDA external scaler over real gRPC on 127.0.0.1, with a real client and the proto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")

from google.protobuf import descriptor_pb2  # noqa: E402

from kopilot.kits import clocks  # noqa: E402
from kopilot.model import series  # noqa: E402
from kopilot.scaling.keda import externalscaler_pb2 as pb  # noqa: E402
from kopilot.scaling.keda import externalscaler_pb2_grpc as pb_grpc  # noqa: E402
from kopilot.scaling.keda import (  # noqa: E402
    health_pb2,
    server,
    sources,
)

pytestmark = pytest.mark.integration

STEP = 60.0
NOW = 2000 * STEP


def _steady(level: float) -> series.Series:
    t = np.arange(0, 2000) * STEP
    rng = np.random.default_rng(2)
    return series.Series.of(t, level + rng.normal(0, level * 0.02, t.size))


class Source:
    """A working fake of a metrics backend: a dict of series, or an exception to raise."""

    def __init__(self) -> None:
        self.data: dict[str, series.Series | Exception | None] = {}

    def demand(self, service: str, now: float) -> series.Series | None:
        value = self.data.get(service)
        if isinstance(value, Exception):
            raise value
        return value


@pytest.fixture
def source() -> Source:
    return Source()


@pytest.fixture
def stub(source: Source) -> Iterator[pb_grpc.ExternalScalerStub]:
    clock = clocks.VirtualClock(NOW)
    running = server.start(server.Scaler(source, clock), "127.0.0.1:0", stream_interval_s=0.05)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield pb_grpc.ExternalScalerStub(channel)
    finally:
        channel.close()
        running.stop(grace=None)


def _ref(name: str = "svc", **meta: str) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(
        name=name,
        namespace="ns",
        scalerMetadata={"capacityRps": "10", "coldStartSeconds": "45", **meta},
    )


def _metric(stub: pb_grpc.ExternalScalerStub, ref: pb.ScaledObjectRef) -> pb.MetricValue:
    resp = stub.GetMetrics(
        pb.GetMetricsRequest(scaledObjectRef=ref, metricName="kopilot-replicas"), timeout=10
    )
    (value,) = resp.metricValues
    assert value.metricValueFloat == float(value.metricValue)
    return value


def test_metric_spec_and_forecast_driven_metric(
    stub: pb_grpc.ExternalScalerStub, source: Source
) -> None:
    source.data["ns/svc"] = _steady(100.0)
    spec = stub.GetMetricSpec(_ref(), timeout=10)
    (ms,) = spec.metricSpecs
    assert (ms.metricName, ms.targetSize, ms.targetSizeFloat) == ("kopilot-replicas", 1, 1.0)
    value = _metric(stub, _ref())
    assert value.metricName == "kopilot-replicas"
    # 100 req/s at 10 req/s per replica, plus the forecast's margin, and the 30 % spare room a
    # service with under two days of history keeps (a day of 1-minute samples here).
    assert 13 <= value.metricValue <= 14
    assert stub.IsActive(_ref(), timeout=10).result is True


def test_stream_is_active_streams(stub: pb_grpc.ExternalScalerStub, source: Source) -> None:
    source.data["ns/svc"] = _steady(50.0)
    stream = stub.StreamIsActive(_ref(), timeout=10)
    first = next(stream)
    second = next(stream)
    assert first.result is True and second.result is True
    stream.cancel()


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        series.Series.empty(),
        series.Series.of(np.arange(100) * STEP + (NOW - 100 * STEP), np.full(100, np.nan)),
        series.Series.of(np.arange(100) * STEP + (NOW - 100 * STEP), np.full(100, -5.0)),
        series.Series.of(np.arange(100) * STEP, np.full(100, 1.0)),  # stale by ~30 h
        RuntimeError("backend down"),
    ],
    ids=["missing", "empty", "nan", "negative", "stale", "source-raises"],
)
def test_garbage_never_crashes_and_never_scales_to_zero(
    stub: pb_grpc.ExternalScalerStub, source: Source, garbage: object
) -> None:
    source.data["ns/svc"] = _steady(80.0)
    good = _metric(stub, _ref()).metricValue
    assert good >= 8
    source.data["ns/svc"] = garbage  # type: ignore[assignment]
    for _ in range(3):
        held = _metric(stub, _ref()).metricValue
        assert held == good, "bad data holds the last plan"
        assert stub.IsActive(_ref(), timeout=10).result is True


def test_garbage_from_the_start_is_active_and_not_zero(
    stub: pb_grpc.ExternalScalerStub, source: Source
) -> None:
    source.data["ns/fresh"] = RuntimeError("no such metric")
    assert stub.IsActive(_ref("fresh", minReplicas="1"), timeout=10).result is True
    assert _metric(stub, _ref("fresh", minReplicas="1")).metricValue >= 1


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({"capacityRps": ""}, "capacityRps is required"),
        ({"capacityRps": "fast"}, "capacityRps is 'fast', not a number"),
        ({"capacityRps": "0"}, "capacityRps must be > 0"),
        ({"minReplicas": "5", "maxReplicas": "2"}, "minReplicas <= maxReplicas"),
        ({"coldStartSeconds": "nan"}, "coldStartSeconds"),
    ],
)
def test_bad_metadata_is_invalid_argument_and_server_keeps_serving(
    stub: pb_grpc.ExternalScalerStub, source: Source, meta: dict[str, str], needle: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=_ref(**meta)), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()
    source.data["ns/svc"] = _steady(30.0)
    assert _metric(stub, _ref()).metricValue >= 3


def test_csv_directory_source_with_a_malformed_file_holds(tmp_path: Path) -> None:
    ns = tmp_path / "ns"
    ns.mkdir()
    good = _steady(40.0)
    (ns / "svc.csv").write_text(
        "ts,value\n"
        + "".join(f"{t:.0f},{v:.3f}\n" for t, v in zip(good.times, good.values, strict=True))
    )
    src = sources.CsvDirectory(tmp_path)
    running = server.start(server.Scaler(src, clocks.VirtualClock(NOW)), "127.0.0.1:0")
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        stub = pb_grpc.ExternalScalerStub(channel)
        first = _metric(stub, _ref()).metricValue
        assert first >= 4
        (ns / "svc.csv").write_text("ts,value\n1,2\n2,oops\n")
        import os

        os.utime(ns / "svc.csv", (NOW + 10, NOW + 10))
        assert _metric(stub, _ref()).metricValue == first
        assert stub.IsActive(_ref(), timeout=10).result is True
    finally:
        channel.close()
        running.stop(grace=None)


def test_proto_matches_keda_field_numbers() -> None:
    f = pb.DESCRIPTOR
    assert f.package == "externalscaler"
    svc = f.services_by_name["ExternalScaler"]
    assert svc.full_name == "externalscaler.ExternalScaler"
    assert sorted(m.name for m in svc.methods) == [
        "GetMetricSpec",
        "GetMetrics",
        "IsActive",
        "StreamIsActive",
    ]
    expected = {
        "ScaledObjectRef": {"name": 1, "namespace": 2, "scalerMetadata": 3},
        "IsActiveResponse": {"result": 1},
        "GetMetricSpecResponse": {"metricSpecs": 1},
        "MetricSpec": {"metricName": 1, "targetSize": 2, "targetSizeFloat": 3},
        "GetMetricsRequest": {"scaledObjectRef": 1, "metricName": 2},
        "GetMetricsResponse": {"metricValues": 1},
        "MetricValue": {"metricName": 1, "metricValue": 2, "metricValueFloat": 3},
    }
    for message, fields in expected.items():
        got = {fd.name: fd.number for fd in f.message_types_by_name[message].fields}
        assert got == fields, message


@pytest.mark.parametrize(
    ("proto", "module"), [("externalscaler", pb), ("health", health_pb2)], ids=["scaler", "health"]
)
def test_committed_generated_code_matches_the_proto(
    tmp_path: Path, proto: str, module: Any
) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc")
    src = Path(server.__file__).resolve().parents[3]
    out = tmp_path / "set.pb"
    rc = protoc.main(
        [
            "protoc",
            f"-I{src}",
            f"--descriptor_set_out={out}",
            f"kopilot/scaling/keda/{proto}.proto",
        ]
    )
    assert rc == 0
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    committed = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
    for made in (fresh, committed):  # protoc adds json names to a descriptor set, not to code
        for message in made.message_type:
            for fd in message.field:
                fd.ClearField("json_name")
            for nested in message.nested_type:
                for fd in nested.field:
                    fd.ClearField("json_name")
    assert fresh == committed

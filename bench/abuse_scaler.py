"""Abuse benchmark of `kopilot scaler` (issue #17): each abuse scenario against the KEDA
external scaler as a separate process on 127.0.0.1, bounded in count and time. Prints per
scenario the server's peak RSS (goal: under the chart's 1 GiB limit), whether the standard
gRPC health check (grpc.health.v1.Health/Check) answered SERVING within 1 s throughout (polled
every 100 ms), the slowest probe, and the status codes the clients got (goal: no UNKNOWN or
INTERNAL for a client's fault).

    python bench/abuse_scaler.py                   # every scenario, ~1 min
    python bench/abuse_scaler.py --only streams,flood
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.abuse_watch import HEADER, Watch

from kopilot.scaling.keda import externalscaler_pb2 as pb
from kopilot.scaling.keda import externalscaler_pb2_grpc as pb_grpc
from kopilot.scaling.keda import health_pb2, health_pb2_grpc

TIME_LIMIT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ref(name: str = "svc", namespace: str = "ns", **meta: str) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(
        name=name, namespace=namespace, scalerMetadata={"capacityRps": "10", **meta}
    )


def code_of(call: Callable[..., Any], request: Any, timeout: float = 5.0) -> str:
    try:
        result = call(request, timeout=timeout)
        if hasattr(result, "cancel"):
            next(result)
            result.cancel()
    except grpc.RpcError as e:
        return str(e.code().name)
    return "OK"


def first(stream: Any) -> str:
    """The status of a stream's first message."""
    try:
        next(stream)
    except grpc.RpcError as e:
        return str(e.code().name)
    return "OK"


def metrics(stub: pb_grpc.ExternalScalerStub, r: pb.ScaledObjectRef) -> str:
    return code_of(stub.GetMetrics, pb.GetMetricsRequest(scaledObjectRef=r))


# ---- scenarios -----------------------------------------------------------------------------


def streams(ch: grpc.Channel, w: Watch) -> str:
    """500 StreamIsActive streams held open (KEDA's external-push holds one per ScaledObject)
    while GetMetrics and IsActive are called; then past the limit of 1,000."""
    stub = pb_grpc.ExternalScalerStub(ch)
    held = [stub.StreamIsActive(ref(f"push{i}"), timeout=120) for i in range(500)]
    answered = sum(next(s).result for s in held[:50])
    lat = []
    for i in range(50):
        started = time.perf_counter()
        w.codes[metrics(stub, ref())] += 1
        w.codes[code_of(stub.IsActive, ref(f"u{i}"))] += 1
        lat.append(time.perf_counter() - started)
    more = [stub.StreamIsActive(ref(f"more{i}"), timeout=120) for i in range(520)]
    for s in more[-40:]:
        w.codes[f"stream:{first(s)}"] += 1
    for s in held + more:
        s.cancel()
    return (
        f"{answered}/50 streams answered; GetMetrics+IsActive with 500 open: "
        f"p50 {np.median(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms"
    )


def path_escape(ch: grpc.Channel, w: Watch) -> str:
    stub = pb_grpc.ExternalScalerStub(ch)
    tries = ["x//etc/passwd", "a/../..", "../../etc/passwd", "ns/../../secret", "/abs", "ns/a/b"]
    for i in range(300):
        w.codes[metrics(stub, ref(service=tries[i % len(tries)]))] += 1
    return "service metadata naming paths out of --demand-dir"


def cross_namespace(ch: grpc.Channel, w: Watch) -> str:
    stub = pb_grpc.ExternalScalerStub(ch)

    def replicas(r: pb.ScaledObjectRef) -> int:
        resp = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r), timeout=5)
        w.codes["OK"] += 1
        return int(resp.metricValues[0].metricValue)

    own = ref("svc", "ns")
    before = replicas(own)
    intruder = ref("x", "other", service="ns/svc", minReplicas="50", maxReplicas="50")
    theirs = [replicas(intruder) for _ in range(20)]
    after = [replicas(own) for _ in range(20)]
    return f"ns/svc plans {before}, another namespace's {max(theirs)}; ns/svc after: {max(after)}"


def huge_numbers(ch: grpc.Channel, w: Watch) -> str:
    stub = pb_grpc.ExternalScalerStub(ch)
    metas = [
        {"maxReplicas": "1e300"},
        {"minReplicas": "1e300", "maxReplicas": "1e300"},
        {"coldStartSeconds": "1e300"},
        {"capacityRps": "1e-300"},
        {"maxReplicas": "9223372036854775808"},
        {"capacityRps": "nan"},
    ]
    for i in range(300):
        w.codes[metrics(stub, ref(**metas[i % len(metas)]))] += 1
    return "maxReplicas 1e300 and friends"


def state_flood(ch: grpc.Channel, w: Watch) -> str:
    """20,000 ScaledObjects asked about once each (the plan state is bounded at 10,000)."""
    stub = pb_grpc.ExternalScalerStub(ch)
    lock = threading.Lock()
    started = time.monotonic()

    def client(k: int) -> None:
        for j in range(2500):
            if time.monotonic() - started > TIME_LIMIT_S:
                return
            code = metrics(stub, ref(f"so-{k}-{j}"))
            with lock:
                w.codes[code] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIME_LIMIT_S + 10)
    return f"{sum(w.codes.values()):,} distinct ScaledObjects asked (8 clients)"


def flood(ch: grpc.Channel, w: Watch) -> str:
    stub = pb_grpc.ExternalScalerStub(ch)
    lock = threading.Lock()

    def client(k: int) -> None:
        for j in range(250):
            r = ref() if j % 4 else ref(capacityRps="fast")
            code = metrics(stub, r) if j % 2 else code_of(stub.IsActive, r)
            with lock:
                w.codes[code] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIME_LIMIT_S)
    return "8 clients x 250 GetMetrics/IsActive, a quarter with bad metadata"


def oversize(ch: grpc.Channel, w: Watch) -> str:
    stub = pb_grpc.ExternalScalerStub(ch)
    big = ref(blob="a" * (4 << 20))
    for _ in range(20):
        w.codes[code_of(stub.IsActive, big)] += 1
    many = ref(**{f"k{i}": "v" * 100 for i in range(8000)})
    for _ in range(20):
        w.codes[code_of(stub.IsActive, many)] += 1
    return "4 MiB metadata values, 8,000-key metadata maps (~0.9 MiB)"


def corrupt(ch: grpc.Channel, w: Watch) -> str:
    rng = np.random.default_rng(0)
    for i in range(400):
        method = ("IsActive", "GetMetricSpec", "GetMetrics", "StreamIsActive")[i % 4]
        path = f"/externalscaler.ExternalScaler/{method}"
        call = ch.unary_stream(path) if method == "StreamIsActive" else ch.unary_unary(path)
        raw = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        w.codes[code_of(call, raw)] += 1
    return "400 random byte strings as requests"


SCENARIOS: dict[str, Callable[[grpc.Channel, Watch], str]] = {
    "streams": streams,
    "path-escape": path_escape,
    "cross-namespace": cross_namespace,
    "huge-numbers": huge_numbers,
    "state-flood": state_flood,
    "flood": flood,
    "oversize": oversize,
    "corrupt": corrupt,
}


def health_probe(port: int) -> Callable[[], bool]:
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")  # the probe's own connection
    stub = health_pb2_grpc.HealthStub(ch)

    def probe() -> bool:
        answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    return probe


def demand_dir(root: Path) -> Path:
    (root / "ns").mkdir(parents=True)
    now = time.time()
    t = now - np.arange(2000)[::-1] * 60.0
    values = 40 + np.random.default_rng(1).normal(0, 1, t.size)
    (root / "ns" / "svc.csv").write_text(
        "ts,value\n" + "".join(f"{a:.0f},{b:.3f}\n" for a, b in zip(t, values, strict=True))
    )
    (root / "secret.csv").write_text("ts,value\n" + f"{now:.0f},100000\n")
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default="", help="comma-separated scenarios: " + ", ".join(SCENARIOS)
    )
    opts = parser.parse_args()
    chosen = [s for s in opts.only.split(",") if s] or list(SCENARIOS)
    print(HEADER)
    with tempfile.TemporaryDirectory() as tmp:
        root = demand_dir(Path(tmp) / "demand")
        for name in chosen:
            port = free_port()  # a fresh server per scenario: its RSS is that scenario's
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "kopilot.cli", "scaler", "--demand-dir", str(root)),
                    *("--port", str(port), "--stream-interval", "1"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                probe = health_probe(port)
                deadline = time.monotonic() + 30
                while True:
                    try:
                        probe()
                        break
                    except grpc.RpcError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise RuntimeError("the scaler did not start") from None
                        time.sleep(0.2)
                ch = grpc.insecure_channel(f"127.0.0.1:{port}")
                with Watch(proc.pid, probe) as w:
                    started = time.perf_counter()
                    note = SCENARIOS[name](ch, w)
                    took = time.perf_counter() - started
                ch.close()
                alive = proc.poll() is None
                print(w.row(name, took) + ("" if alive else "  SERVER DIED"), flush=True)
                print(f"{'':<28} {note}", flush=True)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Abuse benchmark of `kopilot scaler` (issue #17): each abuse scenario against the KEDA
external scaler as a separate process on 127.0.0.1, bounded in count and time. Prints per
scenario the server's peak RSS (goal: under the controller chart's 1 GiB limit, bench/abuse.py
says why that one), whether the standard gRPC health check (grpc.health.v1.Health/Check) answered SERVING within 1 s throughout (polled
every 100 ms), the slowest probe, and the status codes the clients got (goal: no UNKNOWN or
INTERNAL for a client's fault).

    python bench/abuse_scaler.py                   # every scenario, ~1 min
    python bench/abuse_scaler.py --only streams,flood
    python bench/abuse_scaler.py --quick           # every scenario with a tenth of the counts
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import abuse  # bench/abuse.py: the child server, RSS sampling, probe polling, the table row
from kopilot.scaling.keda import externalscaler_pb2 as pb
from kopilot.scaling.keda import externalscaler_pb2_grpc as pb_grpc
from kopilot.scaling.keda import health_pb2, health_pb2_grpc

TIME_LIMIT_S = 60.0


def scaler_stub(ch: grpc.Channel) -> pb_grpc.ExternalScalerStub:
    return pb_grpc.ExternalScalerStub(ch)  # type: ignore[no-untyped-call]  # generated code


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


def streams(ch: grpc.Channel, codes: Counter[str], quick: bool) -> str:
    """500 StreamIsActive streams held open (KEDA's external-push holds one per ScaledObject)
    while GetMetrics and IsActive are called; then past the limit of 1,000."""
    stub = scaler_stub(ch)
    opened = abuse.scaled(500, quick)
    held = [stub.StreamIsActive(ref(f"push{i}"), timeout=120) for i in range(opened)]
    answered = sum(next(s).result for s in held[:50])
    lat = []
    for i in range(abuse.scaled(50, quick)):
        started = time.perf_counter()
        codes[metrics(stub, ref())] += 1
        codes[code_of(stub.IsActive, ref(f"u{i}"))] += 1
        lat.append(time.perf_counter() - started)
    more = [
        stub.StreamIsActive(ref(f"more{i}"), timeout=120) for i in range(abuse.scaled(520, quick))
    ]
    for s in more[-40:]:
        codes[f"stream:{first(s)}"] += 1
    for s in held + more:
        s.cancel()
    return (
        f"{answered}/{len(held[:50])} streams answered; GetMetrics+IsActive with {opened} open: "
        f"p50 {np.median(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms"
    )


def path_escape(ch: grpc.Channel, codes: Counter[str], quick: bool) -> str:
    stub = scaler_stub(ch)
    tries = ["x//etc/passwd", "a/../..", "../../etc/passwd", "ns/../../secret", "/abs", "ns/a/b"]
    for i in range(abuse.scaled(300, quick)):
        codes[metrics(stub, ref(service=tries[i % len(tries)]))] += 1
    return "service metadata naming paths out of --demand-dir"


def cross_namespace(ch: grpc.Channel, codes: Counter[str], quick: bool) -> str:
    stub = scaler_stub(ch)

    def replicas(r: pb.ScaledObjectRef) -> int:
        resp = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r), timeout=5)
        codes["OK"] += 1
        return int(resp.metricValues[0].metricValue)

    own = ref("svc", "ns")
    before = replicas(own)
    intruder = ref("x", "other", service="ns/svc", minReplicas="50", maxReplicas="50")
    theirs = [replicas(intruder) for _ in range(abuse.scaled(20, quick))]
    after = [replicas(own) for _ in range(abuse.scaled(20, quick))]
    return f"ns/svc plans {before}, another namespace's {max(theirs)}; ns/svc after: {max(after)}"


def huge_numbers(ch: grpc.Channel, codes: Counter[str], quick: bool) -> str:
    stub = scaler_stub(ch)
    metas = [
        {"maxReplicas": "1e300"},
        {"minReplicas": "1e300", "maxReplicas": "1e300"},
        {"coldStartSeconds": "1e300"},
        {"capacityRps": "1e-300"},
        {"maxReplicas": "9223372036854775808"},
        {"capacityRps": "nan"},
    ]
    for i in range(abuse.scaled(300, quick)):
        codes[metrics(stub, ref(**metas[i % len(metas)]))] += 1
    return "maxReplicas 1e300 and friends"


def state_flood(ch: grpc.Channel, codes: Counter[str], quick: bool) -> str:
    """20,000 ScaledObjects asked about once each (the plan state is bounded at 10,000)."""
    stub = scaler_stub(ch)
    lock = threading.Lock()
    started = time.monotonic()

    def client(k: int) -> None:
        for j in range(abuse.scaled(2500, quick)):
            if time.monotonic() - started > TIME_LIMIT_S:
                return
            code = metrics(stub, ref(f"so-{k}-{j}"))
            with lock:
                codes[code] += 1

    abuse.clients(8, client, TIME_LIMIT_S + 10)
    return f"{sum(codes.values()):,} distinct ScaledObjects asked (8 clients)"


def flood(ch: grpc.Channel, codes: Counter[str], quick: bool) -> str:
    stub = scaler_stub(ch)
    lock = threading.Lock()
    calls = abuse.scaled(250, quick)

    def client(k: int) -> None:
        for j in range(calls):
            r = ref() if j % 4 else ref(capacityRps="fast")
            code = metrics(stub, r) if j % 2 else code_of(stub.IsActive, r)
            with lock:
                codes[code] += 1

    abuse.clients(8, client, TIME_LIMIT_S)
    return f"8 clients x {calls} GetMetrics/IsActive, a quarter with bad metadata"


def oversize(ch: grpc.Channel, codes: Counter[str], quick: bool) -> str:
    stub = scaler_stub(ch)
    big = ref(blob="a" * (4 << 20))
    for _ in range(abuse.scaled(20, quick)):
        codes[code_of(stub.IsActive, big)] += 1
    many = ref(**{f"k{i}": "v" * 100 for i in range(8000)})
    for _ in range(abuse.scaled(20, quick)):
        codes[code_of(stub.IsActive, many)] += 1
    return "4 MiB metadata values, 8,000-key metadata maps (~0.9 MiB)"


def corrupt(ch: grpc.Channel, codes: Counter[str], quick: bool) -> str:
    rng = np.random.default_rng(0)
    sent = abuse.scaled(400, quick)
    for i in range(sent):
        method = ("IsActive", "GetMetricSpec", "GetMetrics", "StreamIsActive")[i % 4]
        path = f"/externalscaler.ExternalScaler/{method}"
        call = ch.unary_stream(path) if method == "StreamIsActive" else ch.unary_unary(path)
        raw = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        codes[code_of(call, raw)] += 1
    return f"{sent} random byte strings as requests"


SCENARIOS: dict[str, Callable[[grpc.Channel, Counter[str], bool], str]] = {
    "streams": streams,
    "path-escape": path_escape,
    "cross-namespace": cross_namespace,
    "huge-numbers": huge_numbers,
    "state-flood": state_flood,
    "flood": flood,
    "oversize": oversize,
    "corrupt": corrupt,
}
LIMIT = abuse.CONTROLLER_MEMORY_LIMIT


def health_probe(ch: grpc.Channel) -> abuse.Probe:
    """grpc.health.v1.Health/Check on the probe's own channel: 200 when SERVING, 503 for any
    other status, None when it got no answer (an RPC error or the timeout)."""
    stub = health_pb2_grpc.HealthStub(ch)  # type: ignore[no-untyped-call]

    def probe(timeout: float) -> int | None:
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return None
        return 200 if answer.status == health_pb2.HealthCheckResponse.SERVING else 503

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
    parser.add_argument("--quick", action="store_true", help="a tenth of each scenario's counts")
    opts = parser.parse_args()
    chosen = [s for s in opts.only.split(",") if s] or list(SCENARIOS)
    if unknown := sorted(set(chosen) - SCENARIOS.keys()):
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    print(abuse.table_header(LIMIT))
    with tempfile.TemporaryDirectory() as tmp:
        root = demand_dir(Path(tmp) / "demand")
        for name in chosen:
            port = abuse.free_port()  # a fresh server per scenario: its RSS is that scenario's
            command = abuse.python_command(
                *("-m", "kopilot.cli", "scaler", "--demand-dir", str(root)),
                *("--port", str(port), "--stream-interval", "1"),
            )
            with (
                abuse.ChildServer(command, log=Path(tmp) / f"{name}.log") as child,
                grpc.insecure_channel(f"127.0.0.1:{port}") as probe_ch,
                grpc.insecure_channel(f"127.0.0.1:{port}") as ch,
            ):
                probe = {"grpc.health.v1": health_probe(probe_ch)}
                child.wait_until(
                    probe["grpc.health.v1"], what=f"the scaler on {port}", timeout_s=30
                )
                codes: Counter[str] = Counter()
                with abuse.Watch(child.pid, probe, probe_every_s=0.1) as watch:
                    note = SCENARIOS[name](ch, codes, opts.quick)
                alive = child.alive
            row = abuse.table_row(name, watch.result(), codes, memory_limit=LIMIT, alive=alive)
            print(row, flush=True)
            print(f"{'':<28} {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

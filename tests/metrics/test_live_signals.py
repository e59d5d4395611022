"""The live signals reader (docs/signals.md) against a real Prometheus on 127.0.0.1.

The history is built here (`_history`): one pod whose memory leaks toward its limit, one steady
pod, GPUs on two nodes, and the faults the reader must catch: a series with no `pod` label, the
wrong spelling of dcgm-exporter's `Hostname`, a GPU above 100 % busy, a temperature ending in NaN,
a pod that stopped reporting an hour ago. Faults of Prometheus itself are a server that never
answers, a closed port, a reading far after the newest sample, and a clock far from ours.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from kopilot.health import monitors
from kopilot.metrics import prometheus, signals
from kopilot.model import actions, cluster, resources
from tests.fixtures import prometheus as fx

END = float(fx.T0 + 3 * 3600)
"""The history's last sample; a read "now" is END unless said otherwise."""
STEP = 60
MIB = 1024 * 1024
NO_SKEW = signals.Settings(max_skew_s=None)
"""The history is from 2023: the skew check (against the server's wall clock) is its own test."""


def _history() -> str:
    w = fx.Writer()
    t = np.arange(fx.T0, END + 1, STEP, dtype=np.float64)
    n = len(t)
    rng = np.random.default_rng(16)
    kube = {"job": "kubelet"}

    def memory(ns: str, pod: str, mib: np.ndarray, times: np.ndarray = t, **extra: str) -> None:
        labels = {"namespace": ns, "pod": pod, "container": "app", **kube, **extra}
        w.add("container_memory_working_set_bytes", labels, times, mib * MIB)

    memory("ml", "leaky-1", np.linspace(300.0, 900.0, n) + rng.normal(0, 2, n))
    memory("ml", "steady-1", 700.0 + rng.normal(0, 5, n))
    # The pause container's series must not count (the query excludes container="POD").
    w.add(
        "container_memory_working_set_bytes",
        {"namespace": "ml", "pod": "steady-1", "container": "POD", **kube},
        t,
        np.full(n, 10_000.0 * MIB),
    )
    # A series that names no pod (a misconfigured relabelling): dropped, never guessed.
    w.add(
        "container_memory_working_set_bytes",
        {"namespace": "ml", "container": "app", **kube},
        t,
        np.full(n, 100.0 * MIB),
    )
    # A pod that stopped reporting an hour before the end: stale.
    early = t[t <= END - 3600]
    memory("ml", "gone-1", np.full(len(early), 400.0), early)

    def gpu(metric: str, host: str, index: int, values: np.ndarray, host_label: str = "Hostname"):
        labels = {host_label: host, "gpu": str(index), "UUID": f"GPU-{host}-{index}"}
        w.add(metric, labels, t, values)

    gpu("DCGM_FI_DEV_GPU_UTIL", "gpu-a", 0, 40.0 + rng.normal(0, 3, n))
    gpu("DCGM_FI_DEV_GPU_UTIL", "gpu-a", 1, np.full(n, 250.0))  # impossible: 250 % busy
    gpu("DCGM_FI_DEV_GPU_UTIL", "gpu-b", 0, np.full(n, 30.0), host_label="hostname")
    temp = 60.0 + rng.normal(0, 1, n)
    temp[-5:] = np.nan
    gpu("DCGM_FI_DEV_GPU_TEMP", "gpu-a", 0, temp)
    gpu("DCGM_FI_DEV_GPU_TEMP", "gpu-a", 1, 55.0 + rng.normal(0, 1, n))
    # GPU gpu-a/1 starts failing 10 minutes before the end: a new XID every minute (the last-value
    # field alternates between two codes). GPU gpu-a/0 runs the exporter's XID counter: quiet.
    xid = np.zeros(n)
    xid[-10:] = np.where(np.arange(10) % 2 == 0, 79.0, 48.0)
    gpu("DCGM_FI_DEV_XID_ERRORS", "gpu-a", 1, xid)
    gpu("DCGM_EXP_XID_ERRORS_TOTAL", "gpu-a", 0, np.zeros(n))
    # Service ml/detector serves 10 req/s in under 50 ms until a rollout 10 minutes before the
    # end; from then on every request takes 250-500 ms (a regression of the new version).
    buckets = (0.05, 0.1, 0.25, 0.5, 1.0, math.inf)
    slow = t > END - 600
    per_step = np.full(n, 10.0 * STEP)
    for le in buckets:
        fast_in = per_step if le >= 0.05 else 0 * per_step
        slow_in = per_step if le >= 0.5 else 0 * per_step
        counts = np.cumsum(np.where(slow, slow_in, fast_in))
        labels = {"namespace": "ml", "service": "detector", "pod": "detector-1"}
        name = "kopilot_serving_request_duration_seconds_bucket"
        w.add(name, {**labels, "le": "+Inf" if math.isinf(le) else repr(le)}, t, counts)
    return w.text()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    why = fx.available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"real Prometheus needed: {why}")
        pytest.skip(why)
    with fx.serving(tmp_path_factory.mktemp("signals"), _history()) as url:
        yield url


class CountingTransport(httpx.HTTPTransport):
    """The real transport, counting the requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return super().handle_request(request)


def _read(url: str, now: float = END, settings: signals.Settings = NO_SKEW) -> signals.Reading:
    with prometheus.Client(url, timeout=10) as client:
        return signals.Reader(client, settings).read(now)


def test_one_query_per_stream_kind_whatever_the_number_of_objects(server: str) -> None:
    transport = CountingTransport()
    with prometheus.Client(server, timeout=10, transport=transport) as client:
        reading = signals.Reader(client, NO_SKEW).read(END)
    assert reading.blind is None
    assert transport.sent == len(signals.STREAMS)
    pods = {k.split("/")[2] for k in reading.streams if k.endswith("/memory_mib")}
    assert pods == {"leaky-1", "steady-1"}


def test_streams_are_keyed_by_their_objects_and_values_are_in_the_keys_units(server: str) -> None:
    reading = _read(server)
    leaky = reading.streams["pod/ml/leaky-1/memory_mib"]
    assert leaky.times[-1] == END
    assert 880 < leaky.values[-1] < 920  # MiB, not bytes
    steady = reading.streams["pod/ml/steady-1/memory_mib"]
    assert float(np.nanmax(steady.values)) < 1000  # the pause container did not count
    util = reading.streams["gpu/gpu-a/0/utilization"]
    assert 0.2 < float(np.nanmedian(util.values)) < 0.6  # a fraction, not percent
    xid = reading.streams["gpu/gpu-a/1/xid_per_min"]
    assert float(xid.values[-1]) > 0.4 and float(xid.values[0]) == 0.0
    assert float(np.nanmax(reading.streams["gpu/gpu-a/0/xid_per_min"].values)) == 0.0


def test_bad_series_are_dropped_each_with_its_reason(server: str) -> None:
    reading = _read(server)
    why = "\n".join(reading.dropped)
    assert "memory_mib {namespace='ml'}: no `pod` label" in why
    assert "utilization {gpu='0'}: no `Hostname` label" in why  # dcgm's `hostname` spelling
    assert "gpu/gpu-a/1/utilization: 61 impossible value(s) above 1 (max 2.5)" in why
    assert "gpu/gpu-a/0/temperature_c: data-quality gate: " in why and "NaN" in why
    assert "pod/ml/gone-1/memory_mib: data-quality gate: stale" in why
    for key in ("gpu/gpu-a/1/utilization", "gpu/gpu-a/0/temperature_c", "pod/ml/gone-1/memory_mib"):
        assert key not in reading.streams
    assert "gpu/gpu-a/1/temperature_c" in reading.streams


def test_a_stale_prometheus_blinds_the_reading(server: str) -> None:
    reading = _read(server, now=END + 3600)
    assert reading.streams == {}
    assert reading.blind is not None and "Prometheus is stale" in reading.blind
    assert "3300 s old" in reading.blind  # the lookback keeps the last value 5 minutes


def test_a_clock_far_from_prometheus_blinds_the_reading(server: str) -> None:
    reading = _read(server, settings=signals.Settings(max_skew_s=60))
    assert reading.blind is not None and reading.blind.startswith("clock skew")
    assert reading.skew_s is not None and reading.skew_s > 365 * 86400  # the history is 2023's
    assert reading.streams == {}


def test_a_clock_that_agrees_is_not_skew(server: str) -> None:
    now = time.time()  # our clock, as the live loop reads it
    reading = _read(server, now=now, settings=signals.Settings(max_skew_s=60))
    assert reading.skew_s is not None and abs(reading.skew_s) < 60
    # No data near the wall clock: the history is old, so Prometheus is stale, not skewed.
    assert reading.blind is None or "stale" in reading.blind


@contextlib.contextmanager
def _silent_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(sock.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        sock.close()


def test_a_prometheus_that_never_answers_times_out_into_a_blind_reading() -> None:
    with _silent_server() as url, prometheus.Client(url, timeout=0.3) as client:
        reading = signals.Reader(client, signals.Settings()).read(END)
    assert reading.blind is not None
    assert "unreachable or timed out" in reading.blind and "Timeout" in reading.blind
    assert reading.queries == 1  # the first timeout ends the read: no pile of slow queries


def test_a_server_that_hangs_up_mid_answer_is_a_blind_reading_not_a_crash() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    def hang_up() -> None:
        for _ in range(2):
            conn, _addr = sock.accept()
            conn.recv(65536)
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"status"')
            conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with prometheus.Client(url, timeout=5) as client:
            reading = signals.Reader(client, signals.Settings()).read(END)
    finally:
        sock.close()
        thread.join(timeout=5)
    assert reading.blind is not None and "unreachable or timed out" in reading.blind


def test_a_closed_port_is_a_blind_reading() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reading = _read(f"http://127.0.0.1:{port}", settings=signals.Settings())
    assert reading.blind is not None and "unreachable" in reading.blind


def test_samples_from_the_future_blind_the_reading() -> None:
    """A server (a working fake of the query API) whose samples run ahead of our clock."""

    def answer(request: httpx.Request) -> httpx.Response:
        step = float(request.url.params["step"])
        end = float(request.url.params["end"]) + 600  # ten minutes ahead of us
        values = [[end - i * step, "1"] for i in range(30, -1, -1)]
        body = {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [{"metric": {"namespace": "ml", "pod": "p"}, "values": values}],
            },
        }
        return httpx.Response(200, json=body)

    client = prometheus.Client("http://fake", transport=httpx.MockTransport(answer))
    reading = signals.Reader(client, NO_SKEW).read(END)
    assert reading.blind is not None and "in our future" in reading.blind


def test_the_leaking_pod_read_from_prometheus_gets_a_restart_before_its_limit(
    server: str,
) -> None:
    """Reader -> health policy: the leak is found against the pod's limit (1 GiB), not its
    request (4 GiB, which it would reach only in days)."""
    reading = _read(server)
    pods = tuple(
        cluster.Pod(
            name=name,
            namespace="ml",
            node="cpu-1",
            phase=cluster.PodPhase.RUNNING,
            service="ml/svc",
            request=resources.Resources(memory_mib=4096),
            memory_limit_mib=1024.0,
        )
        for name in ("leaky-1", "steady-1")
    )
    snap = cluster.ClusterSnapshot(time=END, pods=pods, metrics=reading.streams)
    policy = monitors.HealthPolicy()
    decision = policy.decide(snap, policy.initial_state(), END)
    restarts = [a for a in decision.actions if isinstance(a, actions.Restart)]
    assert [r.pod for r in restarts] == ["ml/leaky-1"]
    assert math.isclose(float(restarts[0].evidence["growth_per_hour"]), 200.0, rel_tol=0.05)


def test_a_latency_regression_after_a_rollout_is_seen_on_the_service_and_alerted(
    server: str,
) -> None:
    reading = _read(server)
    p99 = reading.streams["service/ml/detector/latency_ms"]
    assert float(p99.values[-1]) > 400 and float(np.nanmedian(p99.values)) < 50
    snap = cluster.ClusterSnapshot(
        time=END,
        metrics={"service/ml/detector/latency_ms": p99},
        services=(
            cluster.ModelService(
                name="detector",
                namespace="ml",
                replicas=2,
                ready_replicas=2,
                capacity_rps=10,
                cold_start_s=30,
            ),
        ),
    )
    policy = monitors.HealthPolicy()
    decision = policy.decide(snap, policy.initial_state(), END)
    assert [(a.kind, a.target) for a in decision.actions] == [
        ("Scale", "service/ml/detector"),
        ("Alert", "service/ml/detector"),
    ]

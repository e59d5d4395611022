"""The real Prometheus scrapes the replay exporter, and docs/signals.md's queries read it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from kopilot.kits import clocks
from kopilot.sim import replayserving
from tests.fixtures import prometheus, replays
from tests.fixtures.replays import DETECTOR

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

# docs/signals.md, verbatim
MEMORY = (
    'sum by (namespace, pod) (container_memory_working_set_bytes{container!="", container!="POD"})'
    " / 1048576"
)
REQUESTS = "sum by (namespace, pod) (rate(kopilot_serving_requests_total[2m]))"
LATENCY = (
    "1000 * histogram_quantile(0.99, sum by (namespace, pod, le) "
    "(rate(kopilot_serving_request_duration_seconds_bucket[2m])))"
)
SERVICE_LATENCY = (
    "1000 * histogram_quantile(0.99, sum by (namespace, service, le) "
    "(rate(kopilot_serving_request_duration_seconds_bucket[2m])))"
)
XID = (
    "60 * sum by (Hostname, gpu) (rate(DCGM_EXP_XID_ERRORS_TOTAL[5m])) or on (Hostname, gpu) "
    "max by (Hostname, gpu) (changes(DCGM_FI_DEV_XID_ERRORS[2m])) / 2"
)
GPU_UTIL = "max by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL) / 100"
NODE_ERRORS = (
    "60 * sum by (node) (rate(kopilot_serving_request_failures_total[2m]) "
    "* on (namespace, pod) group_left (node) kube_pod_info)"
)
ALL_PODS = {
    ("ml", "detector-6d5f7c9b8-aaaaa"),
    ("ml", "detector-6d5f7c9b8-bbbbb"),
    ("ml", "detector-6d5f7c9b8-ccccc"),
    ("ml", "ranker-0"),
    ("jobs", "batch-0"),
}


def _query(url: str, expr: str, **params: float) -> list[dict]:
    kind = "query_range" if "start" in params else "query"
    got = httpx.get(f"{url}/api/v1/{kind}", params={"query": expr, **params}, timeout=10)
    got.raise_for_status()
    body = got.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory):
    why = prometheus.available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"real Prometheus needed: {why}")
        pytest.skip(why)
    # from 1 h into the trace, when demand is up; faults from the start
    leak = replays.fault(kind="leak", pod="/".join(DETECTOR), at="1h", mib_per_min=60)
    storm = replays.fault(kind="xid-storm", node="gpu-node-1", gpu=1, at="1h")
    replay = replays.make(faults=[leak, storm], start_s=3600.0)
    exporter = replayserving.Exporter(replay, clocks.WallClock())
    server = exporter.serve("127.0.0.1", 0)
    try:
        with replays.scraping(
            tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{server.port}"
        ) as url:
            started = time.time()
            deadline = time.monotonic() + 90
            while True:  # bounded: until 12 scrapes are in, or 90 s
                now = time.time()
                series = _query(url, MEMORY, start=started, end=now, step=1)
                if series and min(len(s["values"]) for s in series) >= 12:
                    break
                assert time.monotonic() < deadline, "Prometheus did not scrape 12 times in 90 s"
                time.sleep(0.5)
            yield url, started, now
    finally:
        server.close()


def test_the_leak_shows_as_rising_memory_for_that_pod_only(scraped) -> None:
    url, start, end = scraped
    series = _query(url, MEMORY, start=start, end=end, step=1)
    assert {(s["metric"]["namespace"], s["metric"]["pod"]) for s in series} == ALL_PODS
    assert all(set(s["metric"]) == {"namespace", "pod"} for s in series)
    for s in series:
        values = [float(v) for _, v in s["values"]]
        grew = values[-1] - values[0]
        if s["metric"]["pod"] == DETECTOR[1]:
            # 60 MiB per trace minute = per wall second at 60x; the pod-level cgroup series
            # (container="") is filtered out, so the value is one container's, below its limit
            assert grew > 0.5 * 60 * (len(values) - 1), values
            assert all(5000 < v < 8192 for v in values), values
        else:
            assert abs(grew) < 150, (s["metric"], values)


def test_serving_gpu_and_node_queries_return_their_series_with_their_labels(scraped) -> None:
    url, _, _ = scraped
    requests = _query(url, REQUESTS)
    serving = ALL_PODS - {("jobs", "batch-0")}
    assert {(r["metric"]["namespace"], r["metric"]["pod"]) for r in requests} == serving
    rps = {r["metric"]["pod"]: float(r["value"][1]) for r in requests}
    assert all(0.0 < v <= 10.5 for v in rps.values())  # peak 10 req/s per pod
    # the ranker's peak is half a detector's: at the same demand it serves half the requests
    assert rps["ranker-0"] / rps["detector-6d5f7c9b8-bbbbb"] == pytest.approx(0.5, rel=0.05)
    latency = _query(url, LATENCY)
    assert {(r["metric"]["namespace"], r["metric"]["pod"]) for r in latency} == serving
    assert all(10.0 < float(r["value"][1]) < 1000.0 for r in latency), latency
    util = _query(url, GPU_UTIL)
    assert {(r["metric"]["Hostname"], r["metric"]["gpu"]) for r in util} == {
        ("gpu-node-0", "0"),
        ("gpu-node-0", "1"),
        ("gpu-node-1", "0"),
        ("gpu-node-1", "1"),
    }
    assert all(0.0 <= float(r["value"][1]) <= 1.0 for r in util)
    nodes = _query(url, NODE_ERRORS)
    assert {r["metric"]["node"] for r in nodes} == {"gpu-node-0", "gpu-node-1"}
    services = _query(url, SERVICE_LATENCY)
    assert {(r["metric"]["namespace"], r["metric"]["service"]) for r in services} == {
        ("ml", "detector"),
        ("ml", "ranker"),
    }


def test_the_xid_storm_shows_on_its_gpu_only(scraped) -> None:
    url, _, _ = scraped
    xid = {
        (r["metric"]["Hostname"], r["metric"]["gpu"]): float(r["value"][1])
        for r in _query(url, XID)
    }
    assert set(xid) == {
        ("gpu-node-0", "0"),
        ("gpu-node-0", "1"),
        ("gpu-node-1", "0"),
        ("gpu-node-1", "1"),
    }
    storm = xid.pop(("gpu-node-1", "1"))
    # (a [5m] rate over the ~20 s of history there is reads low: Prometheus divides by the range)
    assert storm > 0.0
    assert all(v < storm for v in xid.values()), xid


def test_every_family_of_the_exporter_is_ingested(scraped, tmp_path: Path) -> None:
    url, _, _ = scraped
    got = httpx.get(f"{url}/api/v1/label/__name__/values", timeout=10).json()["data"]
    for name in (
        "kube_pod_info",
        "kube_pod_owner",
        "kube_pod_container_resource_requests",
        "kube_pod_container_resource_limits",
        "kube_node_status_capacity",
        "container_cpu_usage_seconds_total",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_XID_ERRORS",
        "kopilot_serving_request_failures_total",
    ):
        assert name in got, name
    targets = httpx.get(f"{url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"], targets

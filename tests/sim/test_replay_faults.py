"""The replay exporter's faults: each shows where it should and nowhere else, ends, and is injected
over HTTP with clear errors."""

from __future__ import annotations

import json

import httpx
import pytest

from kopilot.kits import clocks
from kopilot.model import errors
from kopilot.sim import behaviours, injections, replayserving
from tests.fixtures import replays
from tests.fixtures.replays import DETECTOR, ELSEWHERE, NEIGHBOUR, RANKER, fault, pod, value

MEMORY = "container_memory_working_set_bytes"
LIMIT = 8 * 2**30


def _memory(r, key) -> float:
    return value(r, MEMORY, **pod(key, container="server"))


def _failed(r, key) -> float:
    return value(r, "kopilot_serving_request_failures_total", **pod(key))


def _mean_duration_s(r, key) -> tuple[float, float]:
    (hist,) = [f for f in r.families() if f.name == "kopilot_serving_request_duration_seconds"]
    (h,) = [h for h in hist.histograms if pod(key).items() <= h.labels.items()]
    return h.total, h.buckets[-1][1]


def _window(r, key, t0: float, t1: float) -> float:
    """Mean request duration between trace times t0 and t1."""
    r.advance_to(t0)
    s0, n0 = _mean_duration_s(r, key)
    r.advance_to(t1)
    s1, n1 = _mean_duration_s(r, key)
    return (s1 - s0) / (n1 - n0)


def test_a_leak_grows_one_pods_memory_to_its_limit_then_an_oom_kill_resets_it() -> None:
    r = replays.make(faults=[fault(kind="leak", pod="ml/" + DETECTOR[1], at="1h", mib_per_min=50)])
    r.advance_to(3600.0)
    start, neighbour = _memory(r, DETECTOR), _memory(r, NEIGHBOUR)
    restarts = "kube_pod_container_status_restarts_total"
    peak = start
    while value(r, restarts, **pod(DETECTOR)) == 0:
        assert r.now_s < 3 * 3600, "no OOM-kill within 2 h of a 50 MiB/min leak"
        r.advance_to(r.now_s + 60.0)
        peak = max(peak, _memory(r, DETECTOR))
    assert peak > 0.95 * LIMIT and peak < LIMIT
    # a new container: the killed process's counters start again (its neighbour's do not)
    served = "kopilot_serving_requests_total"
    assert (
        value(r, served, **pod(DETECTOR, code="200"))
        < value(r, served, **pod(NEIGHBOUR, code="200")) / 10
    )
    assert _memory(r, DETECTOR) < start + 200 * 2**20  # back to normal after the kill
    assert abs(_memory(r, NEIGHBOUR) - neighbour) < 300 * 2**20
    assert value(r, restarts, **pod(NEIGHBOUR)) == 0


def test_a_leak_that_ends_stops_growing_and_the_pod_starts_afresh() -> None:
    leak = fault(kind="leak", pod="ml/" + DETECTOR[1], at="1h", duration="20m", mib_per_min=50)
    r = replays.make(faults=[leak])
    r.advance_to(3600.0 + 19 * 60)
    assert _memory(r, DETECTOR) > _memory(r, NEIGHBOUR) + 700 * 2**20
    r.advance_to(3600.0 + 21 * 60)
    assert abs(_memory(r, DETECTOR) - _memory(r, NEIGHBOUR)) < 300 * 2**20
    assert r.faults[0].describe(r.now_s)["status"] == "ended"


def test_an_xid_storm_rises_on_one_gpu_until_it_falls_off_the_bus() -> None:
    storm = fault(kind="xid-storm", node="gpu-node-0", gpu=0, at="1h", fatal_after="90m")
    r = replays.make(faults=[storm])

    def count(gpu: str, node: str = "gpu-node-0") -> float:
        return sum(
            s.value
            for s in replays.samples(r, "DCGM_EXP_XID_ERRORS_COUNT")
            if s.labels["Hostname"] == node and s.labels["gpu"] == gpu
        )

    r.advance_to(3600.0 + 10 * 60)
    early = count("0")
    r.advance_to(3600.0 + 80 * 60)
    late = count("0")
    assert late > 2 * early > 0
    assert count("1") + count("0", "gpu-node-1") + count("1", "gpu-node-1") <= 2  # background
    assert value(r, "DCGM_FI_DEV_XID_ERRORS", Hostname="gpu-node-0", gpu="0") == 48
    # the counter docs/signals.md rates: every XID adds 1/speed, so 60 x rate is XIDs a minute
    total = value(r, "DCGM_EXP_XID_ERRORS_TOTAL", Hostname="gpu-node-0", gpu="0", xid="48")
    r.advance_to(3600.0 + 89 * 60)
    more = value(r, "DCGM_EXP_XID_ERRORS_TOTAL", Hostname="gpu-node-0", gpu="0", xid="48") - total
    per_trace_min = 60.0 * more / (9 * 60 / r.settings.speed)  # 9 trace minutes in 9 wall s
    expected = [behaviours.xid_rate_per_min(h) for h in (80 / 60, 89 / 60)]
    assert expected[0] * 0.6 < per_trace_min < expected[1] * 1.4, (per_trace_min, expected)
    failed = _failed(r, DETECTOR)
    r.advance_to(3600.0 + 100 * 60)
    assert value(r, "DCGM_FI_DEV_XID_ERRORS", Hostname="gpu-node-0", gpu="0") == 79
    assert value(r, "DCGM_FI_DEV_GPU_UTIL", Hostname="gpu-node-0", gpu="0") == 0
    # 10 trace minutes on a dead GPU: 60 failed requests a minute, counted at 1/60 (speed 60)
    assert _failed(r, DETECTOR) - failed > 0.8 * 600 / 60
    assert _failed(r, NEIGHBOUR) < 0.1 * _failed(r, DETECTOR)


def test_a_bad_node_fails_and_slows_its_pods_only() -> None:
    r = replays.make(faults=[fault(kind="bad-node", node="gpu-node-0", at="2h")])
    before = _window(r, DETECTOR, 3600.0, 7200.0)
    elsewhere_before = _window(replays.make(), ELSEWHERE, 3600.0, 7200.0)
    f0 = {k: _failed(r, k) for k in (DETECTOR, NEIGHBOUR, ELSEWHERE)}
    after = _window(r, DETECTOR, 7200.0, 7800.0)
    failed = {k: _failed(r, k) - f0[k] for k in f0}
    assert after > 1.7 * before
    assert failed[DETECTOR] > 10 * max(failed[ELSEWHERE], 0.05)
    assert failed[NEIGHBOUR] > 10 * max(failed[ELSEWHERE], 0.05)
    assert elsewhere_before > 0


def test_a_latency_regression_slows_every_pod_of_its_service_and_no_other() -> None:
    regression = fault(kind="latency-regression", service="ml/detector", at="1h")
    for key, slower in ((DETECTOR, True), (ELSEWHERE, True), (RANKER, False)):
        faulty, clean = replays.make(faults=[regression]), replays.make()
        ratio = _window(faulty, key, 3600.0, 5400.0) / _window(clean, key, 3600.0, 5400.0)
        assert ratio == pytest.approx(1.5 if slower else 1.0, rel=0.1), key


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"kind": "leak", "node": "gpu-node-0"}, "a leak fault names pod"),
        ({"kind": "leak", "pod": "ml/nope"}, "'ml/nope' is not a pod of the cluster"),
        ({"kind": "xid-storm", "node": "gpu-node-0", "gpu": 5}, "gpu-node-0 has 2 GPUs"),
        ({"kind": "bad-node", "node": "gpu-node-9"}, "'gpu-node-9' is not a node"),
        ({"kind": "latency-regression", "service": "ml/x"}, "not a serving service"),
        ({"kind": "leak", "pod": "ml/" + DETECTOR[1], "at": "3 weeks"}, "is not a time"),
        ({"kind": "leak", "pod": "ml/" + DETECTOR[1], "factor": 2}, "does not apply"),
        ({"kind": "meltdown"}, "kind: Input should be"),
        ({"kind": "leak", "pod": "ml/" + DETECTOR[1], "colour": "red"}, "colour: Extra inputs"),
    ],
)
def test_a_bad_fault_is_one_clear_line(fields: dict[str, object], says: str) -> None:
    r = replays.make()
    with pytest.raises(errors.InvalidInputError) as e:
        r.inject(replays.fault(**fields))
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.fixture
def served():
    clock = clocks.VirtualClock(0.0)
    exporter = replayserving.Exporter(replays.make(), clock)
    server = exporter.serve("127.0.0.1", 0)
    try:
        yield server, clock
    finally:
        server.close()


@pytest.mark.integration
def test_post_faults_injects_one_now_and_get_lists_it(served) -> None:
    server, clock = served
    clock.sleep(60.0)  # one hour of trace at 60x
    body = {"kind": "leak", "pod": "ml/" + DETECTOR[1], "mib_per_min": 30}
    got = httpx.post(f"{server.url}/faults", json=body, timeout=5)
    assert got.status_code == 201, got.text
    assert got.json()["at_s"] == 3600.0 and got.json()["status"] == "active"
    listed = httpx.get(f"{server.url}/faults", timeout=5).json()
    assert [f["target"] for f in listed["faults"]] == ["ml/" + DETECTOR[1]]
    health = httpx.get(f"{server.url}/healthz", timeout=5)
    assert health.status_code == 200 and "3600" in health.text
    metrics = httpx.get(f"{server.url}/metrics", timeout=5)
    assert metrics.status_code == 200 and b"kube_pod_info{" in metrics.content


@pytest.mark.integration
@pytest.mark.parametrize(
    ("content", "code", "says"),
    [
        (b"{not json", 400, "not JSON"),
        (b"[1, 2]", 400, "a JSON object"),
        (json.dumps({"kind": "leak"}).encode(), 400, "a leak fault names pod"),
        (b"{" + b" " * (replayserving.MAX_BODY + 1) + b"}", 413, "at most"),
    ],
)
def test_a_bad_post_is_a_clear_4xx_and_injects_nothing(served, content, code, says) -> None:
    server, _ = served
    got = httpx.post(
        f"{server.url}/faults",
        content=content,
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert got.status_code == code
    assert says in got.json()["error"]
    assert httpx.get(f"{server.url}/faults", timeout=5).json()["faults"] == []
    assert httpx.get(f"{server.url}/nowhere", timeout=5).status_code == 404


def test_the_documented_scenario_file_loads_and_its_faults_start_and_end_on_time() -> None:
    scenario = replays.CLUSTER.parent / "faults.yaml"
    r = replays.make(faults=injections.load_scenario(scenario))
    assert [f.at_s for f in r.faults] == [7200.0, 14400.0, 23400.0, 32400.0]
    r.advance_to(3600.0)
    assert {f.describe(r.now_s)["status"] for f in r.faults} == {"pending"}
    r.advance_to(10 * 3600.0)
    assert [f.describe(r.now_s)["status"] for f in r.faults] == [
        "active",
        "active",
        "ended",  # the bad node lasted 1 h from 6h30m
        "active",
    ]

"""The replay exporter's values: real names and labels, demand-driven, deterministic, on a clock."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from kopilot.kits import clocks
from kopilot.sim import replayserving
from tests.fixtures import replays
from tests.fixtures.replays import DETECTOR, RANKER, pod, value

REQUESTS = "kopilot_serving_requests_total"


def _served(replay, key) -> float:
    return value(replay, REQUESTS, **pod(key, code="200")) + value(
        replay, REQUESTS, **pod(key, code="500")
    )


def test_every_object_has_the_exporters_series_and_labels() -> None:
    r = replays.make()
    info = replays.samples(r, "kube_pod_info")
    assert {(s.labels["namespace"], s.labels["pod"], s.labels["node"]) for s in info} == {
        ("ml", "detector-6d5f7c9b8-aaaaa", "gpu-node-0"),
        ("ml", "detector-6d5f7c9b8-bbbbb", "gpu-node-0"),
        ("ml", "detector-6d5f7c9b8-ccccc", "gpu-node-1"),
        ("ml", "ranker-0", "gpu-node-1"),
        ("jobs", "batch-0", "gpu-node-1"),
    }
    owner = replays.samples(r, "kube_pod_owner")
    assert {(s.labels["pod"], s.labels["owner_kind"], s.labels["owner_name"]) for s in owner} >= {
        ("detector-6d5f7c9b8-aaaaa", "ReplicaSet", "detector-6d5f7c9b8"),
        ("batch-0", "<none>", "<none>"),
    }
    assert value(r, "kube_node_status_capacity", node="gpu-node-1", resource="nvidia_com_gpu") == 2
    assert (
        value(r, "kube_node_status_capacity", node="gpu-node-1", resource="memory") == 128 * 2**30
    )
    mig = value(
        r, "kube_node_status_capacity", node="gpu-node-1", resource="nvidia_com_mig_1g_10gb"
    )
    assert mig == 7
    req = value(r, "kube_pod_container_resource_requests", **pod(RANKER, resource="cpu"))
    lim = value(r, "kube_pod_container_resource_limits", **pod(RANKER, resource="memory"))
    assert (req, lim) == (2.0, 6 * 2**30)
    util = replays.samples(r, "DCGM_FI_DEV_GPU_UTIL")
    assert len(util) == 4
    mine = [s for s in util if s.labels["pod"] == DETECTOR[1]]
    assert len(mine) == 1
    assert {k: mine[0].labels[k] for k in ("Hostname", "gpu", "namespace", "container")} == {
        "Hostname": "gpu-node-0",
        "gpu": "0",
        "namespace": "ml",
        "container": "server",
    }
    assert mine[0].labels["UUID"].startswith("GPU-") and mine[0].labels["modelName"]
    serving = {s.labels["pod"] for s in replays.samples(r, REQUESTS)}
    assert "batch-0" not in serving and RANKER[1] in serving  # only serving pods serve
    (hist,) = [f for f in r.families() if f.name == "kopilot_serving_request_duration_seconds"]
    assert [b for b, _ in hist.histograms[0].buckets][:-1] == list(r.settings.latency_buckets)


def _histogram(r, key):
    labels = pod(key)
    (hist,) = [f for f in r.families() if f.name == "kopilot_serving_request_duration_seconds"]
    (h,) = [h for h in hist.histograms if labels.items() <= h.labels.items()]
    return h


def _mean_duration_s(r, key) -> float:
    h = _histogram(r, key)
    return h.total / h.buckets[-1][1]


def test_demand_drives_requests_memory_and_latency() -> None:
    r0 = replays.make()
    times = np.arange(0, 22 * 3600, 600.0)
    loads = np.array([r0.load(t) for t in times])
    assert loads.max() > 0.9 and loads.min() < 0.1
    figures = {}
    for name, start in (("low", times[np.argmin(loads)]), ("high", times[np.argmax(loads)])):
        r = replays.make(start_s=float(start))
        before = _served(r, DETECTOR)
        r.advance_to(float(start) + 600)
        rps = (_served(r, DETECTOR) - before) / (600 / r.settings.speed)
        memory = value(r, "container_memory_working_set_bytes", **pod(DETECTOR, container="server"))
        mean_load = np.mean([r.load(float(start) + dt) for dt in np.arange(15.0, 601.0, 15.0)])
        figures[name] = (rps, memory, _mean_duration_s(r, DETECTOR), mean_load)
    low, high = figures["low"], figures["high"]
    # requests per wall second read the trace's own rate: peak 10 req/s x load
    assert high[0] == pytest.approx(10.0 * high[3], rel=0.01)
    assert high[0] > 5 * low[0]
    assert high[1] > low[1]  # memory
    assert high[2] > 1.2 * low[2]  # request duration


def test_counters_advance_at_the_trace_rate_per_wall_second_whatever_the_speed() -> None:
    slow, fast = replays.make(speed=60.0), replays.make(speed=600.0)
    for r in (slow, fast):
        r.advance_to(3600.0)
    # the same hour of trace takes 60 wall seconds at 60x and 6 at 600x: 10x fewer requests
    assert _served(slow, DETECTOR) == pytest.approx(10 * _served(fast, DETECTOR))
    for r in (slow, fast):  # the duration histogram counts every answered request once
        assert _histogram(r, DETECTOR).buckets[-1][1] == pytest.approx(_served(r, DETECTOR))
    cpu = "container_cpu_usage_seconds_total"
    labels = pod(DETECTOR, container="server")
    assert value(slow, cpu, **labels) == pytest.approx(10 * value(fast, cpu, **labels))
    cores = value(slow, cpu, **labels) / 60.0  # CPU seconds per wall second = cores used
    assert 0.0 < cores <= 4.0  # never above the request's 4 cores


def test_same_seed_same_values_whatever_the_steps_another_seed_differs() -> None:
    whole, steps, other = replays.make(seed=7), replays.make(seed=7), replays.make(seed=8)
    whole.advance_to(7200.0)
    other.advance_to(7200.0)
    rng = np.random.default_rng(0)
    t = 0.0
    while t < 7200.0:
        t = min(7200.0, t + float(rng.uniform(1.0, 400.0)))
        steps.advance_to(t)
    assert whole.families() == steps.families()
    assert whole.families() != other.families()


def test_gpu_utilisation_is_the_real_duty_cycle_trace() -> None:
    r = replays.make()
    traces = replays.traces()
    offset = float(traces.demand.times[0] - traces.duty.times[0])
    seen = []
    for t in np.arange(3600.0, 12 * 3600.0, 1800.0):
        r.advance_to(float(t))
        got = value(r, "DCGM_FI_DEV_GPU_UTIL", Hostname="gpu-node-0", gpu="0")
        seen.append(got)
        assert got == round(float(traces.duty.at(r.now_s + offset)[0]))
    assert max(seen) > 0  # the trace's busy periods show


def test_the_clock_maps_wall_time_to_trace_time() -> None:
    clock = clocks.VirtualClock(1000.0)
    exporter = replayserving.Exporter(replays.make(speed=60.0), clock)
    clock.sleep(10.0)
    exporter.families()
    assert exporter.replay.now_s == 600.0
    assert exporter.trace_time() == 600.0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_finds_nothing_but_dcgm_exporters_own_label_names() -> None:
    clock = clocks.VirtualClock(0.0)
    exporter = replayserving.Exporter(
        replays.make(faults=[replays.fault(kind="xid-storm", node="gpu-node-1", gpu=0)]), clock
    )
    clock.sleep(120.0)
    text = exporter.render()
    assert b"DCGM_EXP_XID_ERRORS_COUNT{" in text
    done = subprocess.run(
        ["promtool", "check", "metrics"], check=False, input=text, capture_output=True, timeout=60
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).decode().splitlines()
        # dcgm-exporter's real label names (Hostname, UUID, modelName) are camelCase; the
        # live reader's queries use them, so they stay.
        if not (line.startswith("DCGM_") and "should be written in 'snake_case'" in line)
    ]
    assert problems == []


def test_a_refreshed_cluster_keeps_the_state_of_pods_that_stay() -> None:
    from kopilot.model import errors
    from kopilot.sim import clusterfiles

    full = clusterfiles.load(replays.CLUSTER)
    fewer = replace(full, pods=full.pods[1:])  # the first detector replica is gone
    readings: list[clusterfiles.ClusterSpec | Exception] = [fewer, errors.TemporaryError("down")]

    def source() -> clusterfiles.ClusterSpec:
        got = readings.pop(0)
        if isinstance(got, Exception):
            raise got
        return got

    clock = clocks.VirtualClock(0.0)
    exporter = replayserving.Exporter(replays.make(), clock, source=source, refresh_s=60.0)
    clock.sleep(59.0)
    exporter.families()
    served = _served(exporter.replay, RANKER)
    assert {s.labels["pod"] for s in replays.samples(exporter.replay, "kube_pod_info")} >= {
        DETECTOR[1]
    }
    clock.sleep(1.0)  # 60 s: the first refresh, then one trace minute more
    exporter.families()
    pods = {s.labels["pod"] for s in replays.samples(exporter.replay, "kube_pod_info")}
    assert DETECTOR[1] not in pods and RANKER[1] in pods
    assert _served(exporter.replay, RANKER) > served  # its counters carried on, not reset
    clock.sleep(60.0)  # the second refresh fails: the cluster stays as it was, and says why
    exporter.families()
    assert exporter.problem is not None and "down" in exporter.health()
    assert DETECTOR[1] not in {
        s.labels["pod"] for s in replays.samples(exporter.replay, "kube_pod_info")
    }

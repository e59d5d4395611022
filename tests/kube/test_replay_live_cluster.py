"""`kopilot replay-exporter --kubeconfig`: the replay serves the cluster the API server holds."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s_client

from kopilot.kits import clocks
from kopilot.kube import apis, inventories
from kopilot.serving import instruments
from kopilot.sim import clusterfiles, replaying, replayserving
from tests.fixtures import prometheus
from tests.kube import live

pytestmark = pytest.mark.integration


def _pod(name: str, node: str, *, gpus: int, annotations: dict[str, str] | None = None) -> Any:
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"memory": "6Gi"},
    }
    if gpus:
        for part in ("requests", "limits"):
            resources[part]["nvidia.com/gpu"] = str(gpus)
    return {
        "metadata": {
            "name": name,
            "labels": {"app": name},
            "annotations": annotations or {},
        },
        "spec": {
            "nodeName": node,  # bound at creation: kwok runs it
            "containers": [{"name": "server", "image": "fake", "resources": resources}],
        },
    }


def _in(replay: replaying.Replay, family: str, namespace: str) -> dict[str, dict[str, str]]:
    (f,) = [f for f in replay.families() if f.name == family]
    return {
        s.labels["pod"]: dict(s.labels) for s in f.samples if s.labels.get("namespace") == namespace
    }


def test_the_replay_reads_nodes_and_pods_from_the_api_server_and_follows_changes(
    api_client,
) -> None:
    api = live.make_api(api_client)
    with live.node_group(api, 1, gpus=2) as (node,), live.namespace(api) as ns:
        pods = f"/api/v1/namespaces/{ns}/pods"
        api.post(pods, _pod("detector-0", node, gpus=1), "create pod")
        api.post(pods, _pod("batch-0", node, gpus=0), "create pod")
        rps = {inventories.PEAK_RPS_ANNOTATION: "4"}
        api.post(pods, _pod("web-0", node, gpus=0, annotations=rps), "create pod")

        def read() -> clusterfiles.ClusterSpec:
            return clusterfiles.from_mapping(inventories.describe(api, page_size=2), source="api")

        spec = read()
        assert spec.node(node) is not None
        detector = spec.pod(f"{ns}/detector-0")
        assert detector is not None and detector.gpus == (0,)
        assert detector.limits["memory"] == 6 * 2**30 and detector.requests["cpu"] == 2.0
        assert detector.serving is not None and detector.serving.peak_rps == 10.0
        assert spec.pod(f"{ns}/batch-0").serving is None  # type: ignore[union-attr]
        assert spec.pod(f"{ns}/web-0").serving.peak_rps == 4.0  # type: ignore[union-attr]

        settings = replaying.Settings(latency_buckets=instruments.LATENCY_BUCKETS, seed=3)
        replay = replaying.Replay(spec, replaying.bundled_traces(), settings)
        clock = clocks.VirtualClock(0.0)
        exporter = replayserving.Exporter(replay, clock, source=read, refresh_s=30.0)
        clock.sleep(10.0)
        before = _in(replay, "kube_pod_info", ns)
        assert set(before) == {"detector-0", "batch-0", "web-0"}
        assert before["detector-0"]["node"] == node
        exporter.families()
        served = {
            s.labels["pod"]: s.value
            for f in replay.families()
            if f.name == "kopilot_serving_requests_total"
            for s in f.samples
            if s.labels["namespace"] == ns and s.labels["code"] == "200"
        }
        assert set(served) == {"detector-0", "web-0"}

        api.post(pods, _pod("detector-1", node, gpus=1), "create pod")
        api.call("DELETE", f"{pods}/batch-0", "delete pod", query={"gracePeriodSeconds": 0})
        clock.sleep(10.0)  # before the refresh interval: the cluster as it was
        exporter.families()
        assert set(_in(replay, "kube_pod_info", ns)) == {"detector-0", "batch-0", "web-0"}

        def refreshed() -> bool | None:
            clock.sleep(31.0)
            exporter.families()
            seen = set(_in(replay, "kube_pod_info", ns))
            return True if seen == {"detector-0", "detector-1", "web-0"} else None

        live.wait_for("the replay to follow the API server", refreshed, timeout=30)
        assert exporter.problem is None
        gpus = _in(replay, "DCGM_FI_DEV_GPU_UTIL", ns)
        assert {p: g["gpu"] for p, g in gpus.items()} == {"detector-0": "0", "detector-1": "1"}
        after = {
            s.labels["pod"]: s.value
            for f in replay.families()
            if f.name == "kopilot_serving_requests_total"
            for s in f.samples
            if s.labels["namespace"] == ns and s.labels["code"] == "200"
        }
        assert after["detector-0"] > served["detector-0"]  # its counters carried on


def test_an_unreachable_api_server_keeps_the_last_cluster_and_says_why(api_client) -> None:
    api = live.make_api(api_client)
    with live.node_group(api, 1, gpus=1) as (node,), live.namespace(api) as ns:
        api.post(f"/api/v1/namespaces/{ns}/pods", _pod("p-0", node, gpus=1), "create pod")
        spec = clusterfiles.from_mapping(inventories.describe(api), source="api")
        # the API server gone: a real client to a loopback port where nothing listens
        nowhere = k8s_client.Configuration()
        nowhere.host = f"https://127.0.0.1:{prometheus._free_port()}"
        with k8s_client.ApiClient(nowhere) as gone:
            broken = apis.Api(gone, api.retrier, timeout_s=2.0)

            def read() -> clusterfiles.ClusterSpec:
                return clusterfiles.from_mapping(inventories.describe(broken), source="api")

            settings = replaying.Settings(latency_buckets=instruments.LATENCY_BUCKETS)
            replay = replaying.Replay(spec, replaying.bundled_traces(), settings)
            clock = clocks.VirtualClock(0.0)
            exporter = replayserving.Exporter(replay, clock, source=read, refresh_s=5.0)
            clock.sleep(6.0)
            exporter.families()
        assert exporter.problem is not None and "serving the last one read" in exporter.problem
        assert "p-0" in _in(replay, "kube_pod_info", ns)
        assert exporter.problem in exporter.health()

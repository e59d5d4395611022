"""The health family in `kopilot run`, on the real control plane, fed by a real Prometheus.

A Deployment's pod leaks memory toward its 1 GiB limit, a GPU of another node throws XIDs, and
the Deployment's service answers ten times slower since a rollout; the history (cAdvisor's,
dcgm-exporter's and the serving runtime's metric names, docs/signals.md) is backfilled into a
real Prometheus on 127.0.0.1, ending now. `kopilot run --once` must propose, through the
governor: a Restart of the leaking pod and a cordon-and-drain of the GPU's node, both waiting for
a person by default, and an Alert on the service. Once a person approves the Restart, the next
cycle evicts the pod; with the family allowed to act on its own, the node is cordoned and drained
as far as a PodDisruptionBudget allows (here not at all: both pods stay, the block is reported). A Prometheus whose data stopped an hour ago, or one that is not
there, makes the health family skip the cycle with the reason in the audit log: nothing is
proposed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kubernetes import client as k8s_client

from kopilot.governance import audit
from kopilot.kube import apis, controlplane
from tests.fixtures import prometheus as fx
from tests.kube import live
from tests.kube.test_kubeworld_actions import running_pods

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
MIB = 1024 * 1024
STEP = 60.0


def _history(ns: str, pod: str, gpu_node: str, end: float) -> str:
    """Three hours up to `end`: the pod's memory climbing 300 -> 900 MiB (its limit is 1 GiB),
    GPU 0 of `gpu_node` quiet until ten XIDs in its last ten minutes."""
    w = fx.Writer()
    t = np.arange(end - 3 * 3600, end + 1, STEP)
    n = len(t)
    rng = np.random.default_rng(7)
    w.add(
        "container_memory_working_set_bytes",
        {"namespace": ns, "pod": pod, "container": "model", "job": "kubelet"},
        t,
        (np.linspace(300.0, 900.0, n) + rng.normal(0, 2, n)) * MIB,
    )
    xid = np.zeros(n)
    xid[-10:] = np.where(np.arange(10) % 2 == 0, 79.0, 48.0)
    w.add("DCGM_FI_DEV_XID_ERRORS", {"Hostname": gpu_node, "gpu": "0", "UUID": "GPU-0"}, t, xid)
    w.add(
        "DCGM_FI_DEV_GPU_TEMP",
        {"Hostname": gpu_node, "gpu": "0", "UUID": "GPU-0"},
        t,
        60.0 + rng.normal(0, 1, n),
    )
    # The detector service's p99 latency: under 50 ms until a rollout ten minutes before the end,
    # 250-500 ms after it (10 req/s, the serving runtime's histogram, scraped through its Service).
    slow = t > end - 600
    for le in ("0.05", "0.1", "0.25", "0.5", "1.0", "+Inf"):
        bound = float(le)
        per_step = np.where(slow, 600.0 if bound >= 0.5 else 0.0, 600.0)
        w.add(
            "kopilot_serving_request_duration_seconds_bucket",
            {"namespace": ns, "service": "detector", "pod": pod, "le": le},
            t,
            np.cumsum(per_step),
        )
    return w.text()


@contextlib.contextmanager
def _prometheus(workdir: Path, text: str) -> Iterator[str]:
    why = fx.available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"real Prometheus needed: {why}")
        pytest.skip(why)
    with fx.serving(workdir, text) as url:
        yield url


def _run(kubeconfig: Path, ns: str, log: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = live.kopilot_run(
        kubeconfig,
        "--namespace",
        ns,
        "--audit-log",
        str(log),
        "--approvals",
        str(log.with_name("approvals.jsonl")),
        "-v",
        *args,
    )
    assert result.returncode == 0, result.stderr
    return result


def _leaky_pod(api: apis.Api, ns: str) -> str:
    def running() -> str | None:
        items = api.get(f"/api/v1/namespaces/{ns}/pods", "list pods", labelSelector="app=detector")[
            "items"
        ]
        up = [p for p in items if p["status"].get("phase") == "Running"]
        return str(up[0]["metadata"]["name"]) if up else None

    return live.wait_for("the detector pod to run", running)


def _health(log: Path, ns: str, node: str, after: int = 0) -> list[dict[str, Any]]:
    """Health's records about this test's objects (other tests share the cluster), from the
    records after seq `after` on."""
    out = []
    for r in audit.read(log):
        if int(r.get("seq", 0)) <= after:
            continue
        target = str((r.get("action") or {}).get("target", ""))
        mine = target.startswith((f"pod/{ns}/", f"service/{ns}/")) or node in target
        if r.get("family") == "health" or mine:
            out.append(r)
    return out


def test_a_leak_and_a_failing_gpu_read_from_prometheus_are_remedied_through_the_governor(
    api_client: k8s_client.ApiClient, control_plane: controlplane.ControlPlane, tmp_path: Path
) -> None:
    api = live.make_api(api_client)
    log = tmp_path / "audit.jsonl"
    queue = tmp_path / "approvals.jsonl"
    with live.namespace(api) as ns, live.node_group(api, 2, gpus=1) as nodes:
        live.deployment(api, ns, "detector", replicas=1, group_nodes=[nodes[0]], memory_limit="1Gi")
        pod = _leaky_pod(api, ns)
        # Two pods on the GPU's node, guarded by a PodDisruptionBudget that lets none go.
        # (Not "one of two": these test pods tolerate every taint, so a replacement lands on
        # the cordoned node at once and the budget allows the second eviction too.)
        live.deployment(api, ns, "worker", replicas=2, group_nodes=[nodes[1]])
        _guarded(api, ns, "worker", min_available=2)
        end = float(np.floor(time.time() / STEP) * STEP)
        with _prometheus(tmp_path / "prom", _history(ns, pod, nodes[1], end)) as url:
            waiting = _run(control_plane.kubeconfig, ns, log, "--prometheus-url", url)
            records = _health(log, ns, nodes[1])
            by_kind = {r["action"]["kind"]: r for r in records if "action" in r}
            restart, cordon = by_kind["Restart"], by_kind["Cordon"]
            assert restart["action"]["target"] == f"pod/{ns}/{pod}"
            assert restart["outcome"] == "pending-approval", waiting.stderr
            assert "kopilot approve" in restart["verdict"]
            assert "grows like a leak" in restart["action"]["reason"]
            assert cordon["action"]["node"] == nodes[1] and cordon["action"]["drain"] is True
            assert cordon["outcome"] == "pending-approval"
            assert not any(r["outcome"] == "skipped" for r in records)
            alerts = [r["action"] for r in records if r.get("action", {}).get("kind") == "Alert"]
            assert any(
                a["target"] == f"service/{ns}/detector" and a["evidence"]["metric"] == "latency_ms"
                for a in alerts
            ), alerts
            assert _pod_alive(api, ns, pod)

            # A person approves the Restart: the next (acting) cycle carries it out, through
            # the governor again; the cordon still waits.
            rid = restart["verdict"].rsplit("kopilot approve ", 1)[1].strip("` ")
            approve = subprocess.run(
                [sys.executable, "-m", "kopilot.cli", "approve", rid, "--queue", str(queue)],
                check=False,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert approve.returncode == 0, approve.stderr
            # The same audit log: an approval is applied only if this controller's own log
            # proposed it (a fresh log would rightly ignore it).
            before = max(int(r["seq"]) for r in audit.read(log))
            _run(control_plane.kubeconfig, ns, log, "--prometheus-url", url, "--no-dry-run")
            records = _health(log, ns, nodes[1], after=before)
            done = [r for r in records if r.get("action", {}).get("kind") == "Restart"]
            assert done and done[0]["outcome"] == "approved", records
            assert done[0]["action"]["pod"] == f"{ns}/{pod}"
            assert not _pod_alive(api, ns, pod)
            assert live.kopilot_events(api, ns, "KopilotRestarted")
            cordons = [r for r in records if r.get("action", {}).get("kind") == "Cordon"]
            assert [r["outcome"] for r in cordons] == ["pending-approval"]
            assert not api.get(f"/api/v1/nodes/{nodes[1]}", "read node")["spec"].get(
                "unschedulable"
            )

            # The family allowed to act on its own (still inside every other guardrail): the
            # node is cordoned and drained, as far as the PodDisruptionBudget allows.
            policy = tmp_path / "policy.yaml"
            policy.write_text("dry_run: false\nfamilies: {health: {require_approval: []}}\n")
            log.unlink()
            acted = _run(
                control_plane.kubeconfig, ns, log, "--prometheus-url", url, "--policy", str(policy)
            )
            assert "evicted 0; blocked by a PodDisruptionBudget" in acted.stderr, acted.stderr
            assert len(running_pods(api, ns, "worker")) == 2
            cordons = [
                r for r in _health(log, ns, nodes[1]) if r.get("action", {}).get("kind") == "Cordon"
            ]
            assert [r["outcome"] for r in cordons] == ["approved"]
            node = api.get(f"/api/v1/nodes/{nodes[1]}", "read node")
            assert node["spec"].get("unschedulable") is True


def _guarded(api: apis.Api, ns: str, app: str, *, min_available: int) -> None:
    """A PodDisruptionBudget over `app`, once its pods run and the disruption controller counts them."""
    replicas = live.read_deployment(api, ns, app)["spec"]["replicas"]
    live.wait_for(
        f"{replicas} running {app} pods",
        lambda: True if len(running_pods(api, ns, app)) == replicas else None,
    )
    path = f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"
    body = {
        "metadata": {"name": app},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": app}}},
    }
    api.post(path, body, "create pdb")

    def counted() -> bool | None:
        status = api.get(f"{path}/{app}", "read pdb").get("status") or {}
        allowed = replicas - min_available
        ready = status.get("currentHealthy") == replicas
        return True if ready and status.get("disruptionsAllowed") == allowed else None

    live.wait_for("the disruption controller to count the pods", counted)


def _pod_alive(api: apis.Api, ns: str, name: str) -> bool:
    items = api.get(f"/api/v1/namespaces/{ns}/pods", "list pods")["items"]
    return any(
        p["metadata"]["name"] == name and not p["metadata"].get("deletionTimestamp") for p in items
    )


def test_a_stale_or_missing_prometheus_means_no_health_action_and_an_audited_reason(
    api_client: k8s_client.ApiClient, control_plane: controlplane.ControlPlane, tmp_path: Path
) -> None:
    api = live.make_api(api_client)
    with live.namespace(api) as ns, live.node_group(api, 2, gpus=1) as nodes:
        live.deployment(api, ns, "detector", replicas=1, group_nodes=[nodes[0]], memory_limit="1Gi")
        pod = _leaky_pod(api, ns)
        # The same leak and XIDs, but the data stopped an hour ago: Prometheus is stale.
        end = float(np.floor(time.time() / STEP) * STEP) - 3600
        log = tmp_path / "stale.jsonl"
        with _prometheus(tmp_path / "prom", _history(ns, pod, nodes[1], end)) as url:
            stale = _run(control_plane.kubeconfig, ns, log, "--prometheus-url", url)
        records = _health(log, ns, nodes[1])
        assert [r["outcome"] for r in records] == ["skipped"], stale.stderr
        assert "Prometheus is stale" in records[0]["verdict"]
        assert "skipped:" in stale.stderr

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{s.getsockname()[1]}"
        log = tmp_path / "unreachable.jsonl"
        _run(control_plane.kubeconfig, ns, log, "--prometheus-url", closed)
        records = _health(log, ns, nodes[1])
        assert [r["outcome"] for r in records] == ["skipped"]
        assert "unreachable or timed out" in records[0]["verdict"]
        assert _pod_alive(api, ns, pod)
        node = api.get(f"/api/v1/nodes/{nodes[1]}", "read node")
        assert not node["spec"].get("unschedulable")

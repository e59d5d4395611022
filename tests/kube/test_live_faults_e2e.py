"""The whole chain, live: replay exporter -> Prometheus -> `kopilot run` -> governor -> approval
-> eviction, on the real control plane.

Two kwok GPU nodes, a two-replica GPU Deployment with an 8 GiB memory limit. The replay exporter
(`kopilot replay-exporter --kubeconfig`, 60x) serves those pods' series; a real Prometheus
scrapes it every second; `kopilot run` (acting, health's Restart waiting for a person, as by
default) reads it every 2 s. Over a normal stretch nothing is remediated. Then a leak is injected
into one pod through the exporter's POST /faults: health proposes its Restart, which waits in the
approval queue (the pod lives on); once `kopilot approve` answers it, the next cycle evicts the
pod, before the exporter's leak would have OOM-killed it (its restart count stays 0).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s_client

from kopilot.governance import audit
from kopilot.kube import apis, controlplane
from tests.fixtures import processes, prometheus, replays
from tests.kube import live
from tests.kube.test_kubeworld_actions import running_pods

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
SPEED = 60.0
NORMAL_S = 25.0
LEAK_BOUND_S = 60.0
"""The leak (30 MiB a trace minute, from ~6 GiB of an 8 GiB limit) OOM-kills its pod about 65 s
after it starts at 60x; remedied means evicted before that."""


def _kopilot(*args: str) -> list[str]:
    return [sys.executable, "-m", "kopilot.cli", *args]


@contextlib.contextmanager
def _exporter(kubeconfig: Path, workdir: Path) -> Iterator[str]:
    port = processes.free_port()
    args = _kopilot(
        "replay-exporter",
        "--kubeconfig",
        str(kubeconfig),
        "--port",
        str(port),
        "--speed",
        f"{SPEED:g}",
        "--refresh",
        "2",
    )
    with processes.running(args, workdir / "exporter.log"):
        url = f"http://127.0.0.1:{port}"
        live.wait_for("the replay exporter", lambda: _ok(f"{url}/healthz"), timeout=60)
        yield url


def _ok(url: str) -> bool | None:
    with contextlib.suppress(httpx.HTTPError):
        return True if httpx.get(url, timeout=2).status_code == 200 else None
    return None


def _health(log: Path, ns: str) -> list[dict[str, Any]]:
    """Health's verdicts on this test's objects (other tests share the cluster)."""
    out = []
    for r in audit.read(log) if log.exists() else []:
        action = r.get("action") or {}
        mine = str(action.get("target", "")).startswith((f"pod/{ns}/", f"service/{ns}/"))
        if str(action.get("policy", "")).startswith("health") and mine:
            out.append(r)
    return out


def _pod_alive(api: apis.Api, ns: str, name: str) -> bool:
    items = api.get(f"/api/v1/namespaces/{ns}/pods", "list pods")["items"]
    return any(
        p["metadata"]["name"] == name and not p["metadata"].get("deletionTimestamp") for p in items
    )


def _oom_kills(prom: str, ns: str, pod: str) -> float:
    q = (
        "max_over_time(sum(kube_pod_container_status_restarts_total"
        f'{{namespace="{ns}",pod="{pod}"}})[5m:1s])'
    )
    result = httpx.get(f"{prom}/api/v1/query", params={"query": q}, timeout=10).json()
    return sum(float(s["value"][1]) for s in result["data"]["result"])


def test_a_leak_injected_live_is_detected_approved_and_evicted_and_a_normal_stretch_is_quiet(
    api_client: k8s_client.ApiClient, control_plane: controlplane.ControlPlane, tmp_path: Path
) -> None:
    why = prometheus.available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"real Prometheus needed: {why}")
        pytest.skip(why)
    api = live.make_api(api_client)
    log, queue = tmp_path / "audit.jsonl", tmp_path / "approvals.jsonl"
    policy = tmp_path / "policy.yaml"
    # Health's thresholds are wall seconds; the replay runs 60x: two trace hours of horizon.
    policy.write_text(
        f"dry_run: false\nfamilies: {{health: {{leak_horizon_s: {7200 / SPEED:g}}}}}\n"
    )
    with (
        live.namespace(api) as ns,
        live.node_group(api, 2, gpus=2) as nodes,
        contextlib.ExitStack() as stack,
    ):
        live.deployment(
            api, ns, "detector", replicas=2, gpus=1, group_nodes=nodes, memory_limit="8Gi"
        )
        live.wait_for(
            "2 detector pods Running",
            lambda: True if len(running_pods(api, ns, "detector")) == 2 else None,
        )
        exporter = stack.enter_context(_exporter(control_plane.kubeconfig, tmp_path))
        prom = stack.enter_context(
            replays.scraping(tmp_path / "prom", exporter.removeprefix("http://"))
        )
        args = _kopilot(
            "run",
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "--prometheus-url",
            prom,
            "--interval",
            "2",
            "--signals-history",
            "40",
            "--signals-step",
            "2",
            "--namespace",
            ns,
            "--metrics-port",
            "-1",
            "--no-leader-elect",
            "--audit-log",
            str(log),
            "--approvals",
            str(queue),
            "--policy",
            str(policy),
            "-v",
        )
        run = stack.enter_context(processes.running(args, tmp_path / "kopilot.log"))

        # A normal stretch: signals flow, no remediation (and no alert) on this namespace.
        out = tmp_path / "kopilot.log"
        live.wait_for("kopilot run's first cycle", lambda: "cycle" in out.read_text() or None, 60)
        time.sleep(NORMAL_S)
        assert run.poll() is None, out.read_text()[-3000:]
        assert _health(log, ns) == []
        assert "skipped" not in out.read_text()  # health ran every cycle: its signals were trusted

        pod = min(p["metadata"]["name"] for p in running_pods(api, ns, "detector"))
        body = {"kind": "leak", "pod": f"{ns}/{pod}", "mib_per_min": 30}
        assert httpx.post(f"{exporter}/faults", json=body, timeout=10).status_code == 201
        injected = time.monotonic()

        def proposed() -> dict[str, Any] | None:
            restarts = [r for r in _health(log, ns) if r["action"]["kind"] == "Restart"]
            return restarts[0] if restarts else None

        restart = live.wait_for("health's Restart of the leaking pod", proposed, LEAK_BOUND_S)
        assert restart["action"]["target"] == f"pod/{ns}/{pod}"
        assert restart["outcome"] == "pending-approval"
        assert "grows like a leak" in restart["action"]["reason"]
        time.sleep(4)  # two more cycles: waiting for a person means not acting
        assert _pod_alive(api, ns, pod)
        assert [r["outcome"] for r in _health(log, ns) if r["action"]["kind"] == "Restart"] == [
            "pending-approval"
        ]

        rid = restart["verdict"].rsplit("kopilot approve ", 1)[1].strip("` ")
        subprocess.run(
            _kopilot("approve", rid, "--queue", str(queue)),
            check=True,
            capture_output=True,
            timeout=60,
        )
        live.wait_for(
            "the approved eviction",
            lambda: True if not _pod_alive(api, ns, pod) else None,
            max(5.0, LEAK_BOUND_S - (time.monotonic() - injected)),
        )
        done = [r for r in _health(log, ns) if r["action"]["kind"] == "Restart"]
        assert [r["outcome"] for r in done] == ["pending-approval", "approved"], done
        assert live.kopilot_events(api, ns, "KopilotRestarted")
        # Evicted before the leak OOM-killed it (the exporter counts its OOM-kills as restarts).
        assert _oom_kills(prom, ns, pod) == 0
        assert run.poll() is None

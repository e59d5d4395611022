"""The real kube-scheduler calls `kopilot extender` (filter, prioritize, bind) for GPU pods.

A second kube-scheduler runs beside the fixture's, with a KubeSchedulerConfiguration whose
extender is a `kopilot extender` process on 127.0.0.1 (the documented configuration). 120 kwok
nodes advertise 8 GPUs each: half are labelled A100, half T4. Pods ask for whole GPUs and say,
through kopilot's annotation, that only T4s will do. The stock scheduler cannot read that
annotation, so only the extender's filter can keep them off the A100s; and since the extender is
the binder (bindVerb), every binding goes through it, and it writes the GPUs it chose on each pod.
Then the extender is restarted: it must adopt the running pods from the API (its node and pod
sync) before it places the next ones, so no GPU is handed out twice.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kopilot.kube import apis, controlplane
from tests.fixtures import processes
from tests.kube import conftest, live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

NODES = int(os.environ.get("E2E_NODES", "120"))
PODS = int(os.environ.get("E2E_PODS", "100"))
MORE = 40
SHIPPED_CONFIG = (
    Path(__file__).resolve().parents[2] / "deploy/kube-scheduler/kube-scheduler-config.yaml"
)
SCHEDULER = "kopilot-scheduler"


@pytest.mark.parametrize("node_cache", [False, True], ids=["nodes", "node-names"])
def test_kube_scheduler_places_gpu_pods_through_kopilot_extender(
    control_plane: controlplane.ControlPlane,
    api_client: object,
    tmp_path: Path,
    node_cache: bool,
) -> None:
    api = live.make_api(api_client)  # type: ignore[arg-type]
    port = processes.free_port()
    # The shipped configuration (deploy/kube-scheduler), pointed at this test's API server and
    # extender port, so the real kube-scheduler validates and uses what users deploy.
    config = yaml.safe_load(SHIPPED_CONFIG.read_text())
    config["clientConnection"] = {"kubeconfig": str(control_plane.kubeconfig)}
    config["leaderElection"] = {"leaderElect": False}
    config["profiles"] = [{"schedulerName": SCHEDULER}]
    (extender,) = config["extenders"]
    extender["urlPrefix"] = f"http://127.0.0.1:{port}"
    # True: kube-scheduler sends node names only; the extender's node watch is then its only
    # source of node capacity.
    extender["nodeCacheCapable"] = node_cache
    config_path = tmp_path / "scheduler.yaml"
    config_path.write_text(yaml.safe_dump(config))
    kopilot = [
        sys.executable,
        "-m",
        "kopilot.cli",
        "extender",
        "--port",
        str(port),
        "--kubeconfig",
        str(control_plane.kubeconfig),
    ]
    scheduler = [
        str(conftest.binaries().path("kube-scheduler")),
        f"--config={config_path}",
        f"--secure-port={processes.free_port()}",
        "--bind-address=127.0.0.1",
        f"--cert-dir={tmp_path / 'certs'}",
    ]
    with (
        live.node_group(api, NODES // 2, labels={"kopilot.io/gpu-model": "T4"}) as t4,
        live.node_group(api, NODES // 2, labels={"kopilot.io/gpu-model": "A100-80GB"}),
        live.namespace(api) as ns,
    ):
        procs: list[subprocess.Popen[bytes]] = []

        def placed(count: int = PODS) -> list[dict[str, object]] | None:
            for proc, log in zip(procs, ("extender", "scheduler"), strict=True):
                assert proc.poll() is None, (tmp_path / f"{log}.log").read_text()[-2000:]
            pods = api.get(f"/api/v1/namespaces/{ns}/pods", "list pods")["items"]
            running = [p for p in pods if p.get("status", {}).get("phase") == "Running"]
            return running if len(running) == count else None

        with (
            processes.running(kopilot, tmp_path / "extender.log", new_session=True) as ext,
            processes.running(scheduler, tmp_path / "scheduler.log", new_session=True) as sched,
        ):
            procs[:] = [ext, sched]
            live.wait_for("the extender to listen", lambda: _listening(port) or None, timeout=60)
            for i in range(PODS):
                _create(api, ns, f"train-{i}")
            try:
                running = live.wait_for(f"{PODS} GPU pods Running", placed, timeout=240)
            except BaseException:
                pods = api.get(f"/api/v1/namespaces/{ns}/pods", "list pods")["items"]
                events = api.get(f"/api/v1/namespaces/{ns}/events", "list events")["items"]
                print("POD0", pods[0].get("status"), pods[0]["spec"].get("nodeName"))
                print("EVENTS", [(e.get("reason"), e.get("message")) for e in events[-5:]])
                raise
        where = [p["spec"]["nodeName"] for p in running]  # type: ignore[index]
        assert set(where) <= set(t4), "a pod that asked for T4s landed elsewhere"
        # 100 pods x 2 GPUs on 60 T4 nodes x 8 GPUs: only packing-aware placement leaves whole
        # nodes free; every node holds at most 4 such pods.
        per_node = {n: where.count(n) for n in set(where)}
        assert max(per_node.values()) <= 4
        _assert_gpus_disjoint(api, ns, expect=PODS)

        # A new extender process starts from the API alone: it adopts the running pods, then
        # the next pods get GPUs that no running pod holds.
        with (
            processes.running(kopilot, tmp_path / "extender.log", new_session=True) as ext,
            processes.running(scheduler, tmp_path / "scheduler.log", new_session=True) as sched,
        ):
            procs[:] = [ext, sched]
            live.wait_for("the extender to listen", lambda: _listening(port) or None, timeout=60)
            health = _health(port)
            assert health["pods"] == PODS and health["nodes"] >= NODES, health
            for i in range(PODS, PODS + MORE):
                _create(api, ns, f"train-{i}")
            live.wait_for(f"{MORE} more GPU pods Running", lambda: placed(PODS + MORE), timeout=240)
            _assert_gpus_disjoint(api, ns, expect=PODS + MORE)


def _create(api: apis.Api, ns: str, name: str) -> None:
    api.post(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": name, "annotations": {"kopilot.io/gpu-models": "T4"}},
            "spec": {
                "schedulerName": SCHEDULER,
                "tolerations": [
                    {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
                ],
                "containers": [
                    {"name": "c", "image": "fake", "resources": {"limits": {"nvidia.com/gpu": "2"}}}
                ],
            },
        },
        "create pod",
    )


def _assert_gpus_disjoint(api: apis.Api, ns: str, *, expect: int) -> None:
    """Every pod carries the 2 GPUs the extender gave it; no GPU of a node is given twice."""
    pods = api.get(f"/api/v1/namespaces/{ns}/pods", "list pods")["items"]
    held: dict[str, list[int]] = {}
    for p in pods:
        note = (p["metadata"].get("annotations") or {}).get("kopilot.io/gpu-indices", "")
        gpus = [int(g) for g in note.split(",") if g]
        assert len(gpus) == 2 and all(0 <= g < 8 for g in gpus), (p["metadata"]["name"], note)
        held.setdefault(p["spec"]["nodeName"], []).extend(gpus)
    assert sum(len(g) for g in held.values()) == 2 * expect
    for node, gpus in held.items():
        assert len(gpus) == len(set(gpus)), f"{node}: GPUs handed out twice: {sorted(gpus)}"


def _health(port: int) -> dict[str, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/healthz")
    body: dict[str, int] = json.loads(conn.getresponse().read())
    conn.close()
    return body


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0

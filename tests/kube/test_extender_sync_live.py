"""ClusterSync against a real API server: the extender follows nodes and pods it did not bind."""

from __future__ import annotations

from pathlib import Path

import pytest

from kopilot.kits import clocks, randomness
from kopilot.kube import controlplane, extender_sync
from kopilot.scheduling import extending
from tests.kube import live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _pod(name: str, node: str, gpus: int, indices: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "annotations": {"kopilot.io/gpu-indices": indices}},
        "spec": {
            "nodeName": node,  # placed without any scheduler, as by another one
            "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
            "containers": [
                {
                    "name": "c",
                    "image": "fake",
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
        },
    }


def test_the_sync_adopts_and_releases_pods_and_follows_nodes(
    control_plane: controlplane.ControlPlane, api_client: object, tmp_path: Path
) -> None:
    api = live.make_api(api_client)  # type: ignore[arg-type]
    ext = extending.Extender(rng=randomness.rng(0, "sync-live"), grace_s=0.0)
    sync = extender_sync.ClusterSync(ext, api, clock=clocks.WallClock(), interval_s=0.1)
    try:
        with live.node_group(api, 2, gpus=4) as nodes, live.namespace(api) as ns:
            assert sync.wait_synced(timeout=30.0)
            sync.start()
            live.wait_for("both nodes known", lambda: set(nodes) <= set(ext.nodes) or None)
            api.post(f"/api/v1/namespaces/{ns}/pods", _pod("a", nodes[0], 2, "1,2"), "create")
            key = f"{ns}/a"
            live.wait_for("the pod adopted", lambda: key in ext.bound or None)
            assert ext.bound[key].gpu_indices == (1, 2)
            cl = ext._state
            assert cl is not None
            assert cl.gpu_free[cl.index[nodes[0]]][:4].tolist() == [1000, 0, 0, 1000]
            api.call(
                "DELETE",
                f"/api/v1/namespaces/{ns}/pods/a",
                "delete pod",
                query={"gracePeriodSeconds": 0},
            )
            live.wait_for("the pod released", lambda: key not in ext.bound or None)
            assert sync.last is not None  # (other tests' objects may have problems of their own)
            assert not [p for p in sync.last.problems if ns in p or any(n in p for n in nodes)]
        live.wait_for("the nodes dropped", lambda: not set(nodes) & set(ext.nodes) or None)
    finally:
        sync.stop()

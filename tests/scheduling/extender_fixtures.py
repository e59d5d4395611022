"""v1.Node / v1.Pod JSON builders for extender tests and the load benchmark."""

from __future__ import annotations

from typing import Any


def v1_node(
    name: str, *, gpus: int = 8, product: str = "G2", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    allocatable: dict[str, Any] = {"cpu": "96", "memory": "384Gi", "pods": "110"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    allocatable.update(extra or {})
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kopilot.io/gpu-model": product},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": "10.0.0.0/24"},
        "status": {
            "capacity": dict(allocatable),
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "nodeInfo": {"kubeletVersion": "v1.30.0", "osImage": "Ubuntu 22.04"},
        },
    }


def v1_pod(
    name: str, *, uid: str | None = None, requests: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": uid or f"uid-{name}"},
        "spec": {
            "containers": [
                {"name": "main", "image": "x", "resources": {"requests": requests or {"cpu": "1"}}}
            ]
        },
    }


def args(
    pod: dict[str, Any], nodes: list[dict[str, Any]] | None = None, names: list[str] | None = None
) -> dict[str, Any]:
    return {
        "Pod": pod,
        "Nodes": {"items": nodes} if nodes is not None else None,
        "NodeNames": names,
    }

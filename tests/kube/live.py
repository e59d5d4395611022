"""Builders and helpers for kopilot's tests against the real test control plane (tests/kube).

Everything goes through kopilot's own raw-JSON `apis.Api` over the session's `ApiClient`; each
test makes its own namespace and its own kwok nodes (by a group label) and removes them.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from kubernetes import client as k8s_client

from kopilot.kits import clocks
from kopilot.kube import apis, controlplane, failures, notes, retrying
from kopilot.model import errors, series

T = TypeVar("T")
GROUP_LABEL = "kopilot.test/group"


def make_api(api_client: k8s_client.ApiClient, seed: int = 0) -> apis.Api:
    return apis.Api(
        api_client,
        retrying.Retrier(clocks.WallClock(), random.Random(seed), retrying.Backoff(attempts=3)),
    )


def kopilot_run(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`kopilot run --once` (no metrics port, no leader election) against `kubeconfig`."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kopilot.cli",
            "run",
            "--kubeconfig",
            str(kubeconfig),
            "--once",
            "--metrics-port",
            "-1",
            "--no-leader-elect",
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def service_accounts(api: apis.Api, namespace: str, *names: str) -> None:
    """Create a ServiceAccount for each of `names` in `namespace`."""
    for name in names:
        api.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            {"metadata": {"name": name}},
            "create a service account",
        )


def token(api: apis.Api, namespace: str, account: str, audience: str | None = None) -> str:
    """A 10-minute token of ServiceAccount `account` (for `audience`, else the API server's)."""
    spec: dict[str, Any] = {"expirationSeconds": 600}
    if audience is not None:
        spec["audiences"] = [audience]
    answer = api.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        "create a token",
    )
    return str(answer["status"]["token"])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll `probe` until it returns a value; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def namespace(api: apis.Api) -> Iterator[str]:
    name = f"k-{uuid.uuid4().hex[:8]}"
    api.post("/api/v1/namespaces", {"metadata": {"name": name}}, "create namespace")
    try:
        yield name
    finally:
        with contextlib.suppress(failures.KubeError):
            api.call("DELETE", f"/api/v1/namespaces/{name}", "delete namespace")


@contextlib.contextmanager
def node_group(
    api: apis.Api,
    count: int,
    *,
    gpus: int = 8,
    labels: dict[str, str] | None = None,
    extended: dict[str, str] | None = None,
) -> Iterator[list[str]]:
    """`count` kwok nodes with `gpus` A100s each (or what `labels` say), Ready; deleted afterwards.
    `extended` adds capacity (MIG slices: `{"nvidia.com/mig-1g.10gb": "14"}`)."""
    group = uuid.uuid4().hex[:8]
    names = [f"n-{group}-{i}" for i in range(count)]
    capacity = {"cpu": "96", "memory": "1Ti", "pods": "110", "nvidia.com/gpu": str(gpus)}
    capacity.update(extended or {})
    try:
        for name in names:
            api.post(
                "/api/v1/nodes",
                {
                    "metadata": {
                        "name": name,
                        "labels": {
                            GROUP_LABEL: group,
                            "type": "kwok",
                            "nvidia.com/gpu.product": "A100-80GB",
                            **(labels or {}),
                        },
                        "annotations": {"kwok.x-k8s.io/node": "fake"},
                    },
                    "status": {"capacity": capacity, "allocatable": capacity},
                },
                "create node",
            )
        wait_for(f"{count} kwok nodes Ready", lambda: all_ready(api, names) or None)
        yield names
    finally:
        with contextlib.suppress(failures.KubeError):
            api.call(
                "DELETE",
                "/api/v1/nodes",
                "delete nodes",
                query={"labelSelector": f"{GROUP_LABEL}={group}"},
            )


def all_ready(api: apis.Api, names: list[str]) -> bool:
    for name in names:
        node = api.get(f"/api/v1/nodes/{name}", "read node")
        conditions = node.get("status", {}).get("conditions") or []
        if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return False
    return True


def managed_annotations(
    *,
    capacity: float = 10.0,
    cold_start: float = 60.0,
    lo: int = 1,
    hi: int = 20,
    query: str | None = None,
) -> dict[str, str]:
    out = {
        notes.MANAGED: "true",
        notes.CAPACITY_RPS: str(capacity),
        notes.COLD_START_S: str(cold_start),
        notes.MIN_REPLICAS: str(lo),
        notes.MAX_REPLICAS: str(hi),
    }
    if query:
        out[notes.DEMAND_QUERY] = query
    return out


def deployment(
    api: apis.Api,
    namespace: str,
    name: str,
    *,
    replicas: int,
    annotations: dict[str, str] | None = None,
    gpus: int = 0,
    group_nodes: list[str] | None = None,
    memory_limit: str | None = None,
) -> dict[str, Any]:
    gpu = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    limits = {**gpu, **({"memory": memory_limit} if memory_limit is not None else {})}
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "model",
                "image": "registry.invalid/kopilot/detector:test",  # kwok never pulls it
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi", **gpu},
                    "limits": limits,
                },
            }
        ],
    }
    if group_nodes:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [  # terms are ORed; a field term takes one value
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [n]}]}
                        for n in group_nodes
                    ]
                }
            }
        }
        spec["tolerations"] = [{"operator": "Exists"}]
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }
    return api.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", body, "create deployment")


def read_deployment(api: apis.Api, namespace: str, name: str) -> dict[str, Any]:
    return api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", "read deployment")


def kopilot_events(
    api: apis.Api, namespace: str, reason: str | None = None
) -> list[dict[str, Any]]:
    items = api.get(f"/api/v1/namespaces/{namespace}/events", "list events").get("items") or []
    return [
        e
        for e in items
        if (e.get("source") or {}).get("component") == "kopilot"
        and (reason is None or e.get("reason") == reason)
    ]


def set_ready(api: apis.Api, node: str, ready: bool) -> None:
    """Write the node's Ready condition, as its kubelet would (status subresource)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    condition = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": "KubeletReady" if ready else "KubeletNotReady",
        "message": "test" if ready else "test: container runtime is down",
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": stamp,
    }
    api.patch(f"/api/v1/nodes/{node}/status", {"status": {"conditions": [condition]}}, "set ready")


@contextlib.contextmanager
def kwok_paused(plane: controlplane.ControlPlane) -> Iterator[None]:
    """Stop kwok (which plays every kubelet) so a NotReady written by a test stays NotReady:
    kwok would otherwise set Ready back at once. Always resumed, also when the test fails."""
    [kwok] = [c for c in plane.components if c.name == "kwok"]
    os.kill(kwok.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(kwok.process.pid, signal.SIGCONT)


@dataclass
class ReplayedDemand:
    """A demand source replaying a curve (req/s over time), like Prometheus would return it:
    samples every `step` up to `end`, none after. Counts its queries; can be told to fail."""

    times: np.ndarray
    values: np.ndarray
    queries: int = 0
    fail_with: errors.KopilotError | None = None

    def at(self, t: float) -> float:
        i = int(np.searchsorted(self.times, t, side="right")) - 1
        return float(self.values[max(i, 0)])

    def demand(self, query: str, *, start: float, end: float, step: float) -> series.Series:
        self.queries += 1
        if self.fail_with is not None:
            raise self.fail_with
        grid = np.arange(np.ceil(start / step) * step, end + 1e-9, step)
        grid = grid[grid >= self.times[0]]
        return series.Series.of(grid, [self.at(t) for t in grid])

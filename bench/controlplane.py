"""Start-up time and memory of the test control plane (tests/kube's fixture).

Starts etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on loopback, prints
how long until every part served, then the resident memory of each process: idle, and again after
100 kwok GPU nodes and a 100-replica GPU Deployment are Running.

    python bench/controlplane.py [--nodes 100] [--runs 1]

Needs the binaries from `bash scripts/setup.d/50-controlplane.sh`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

import datasets  # bench/datasets.py: --quick
from kopilot.kits import clocks
from kopilot.kube import controlplane

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def print_rss(label: str, cp: controlplane.ControlPlane) -> None:
    rss = cp.rss_bytes()
    parts = ", ".join(f"{name} {size / MIB:.0f}" for name, size in rss.items())
    print(f"  RSS {label}: total {sum(rss.values()) / MIB:.0f} MiB ({parts})")


def load(cp: controlplane.ControlPlane, nodes: int) -> float:
    """Create `nodes` GPU nodes and one GPU pod per node; seconds until all pods are Running."""
    api = config.new_client_from_config(config_file=str(cp.kubeconfig))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    capacity = {"cpu": "96", "memory": "1Ti", "pods": "110", "nvidia.com/gpu": "8"}
    for i in range(nodes):
        core.create_node(
            client.V1Node(
                metadata=client.V1ObjectMeta(name=f"gpu-{i:03d}"),
                status=client.V1NodeStatus(capacity=capacity, allocatable=capacity),
            )
        )
    started = time.perf_counter()
    limits = {"nvidia.com/gpu": "8"}
    apps.create_namespaced_deployment(
        "default",
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="bench"),
            spec=client.V1DeploymentSpec(
                replicas=nodes,
                selector=client.V1LabelSelector(match_labels={"app": "bench"}),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"app": "bench"}),
                    spec=client.V1PodSpec(
                        containers=[
                            client.V1Container(
                                name="m",
                                image="registry.invalid/bench:0",
                                resources=client.V1ResourceRequirements(limits=limits),
                            )
                        ]
                    ),
                ),
            ),
        ),
    )
    deadline = started + 300
    while time.perf_counter() < deadline:
        pods = core.list_namespaced_pod("default", label_selector="app=bench").items
        if sum(p.status.phase == "Running" for p in pods) == nodes:
            api.close()
            return time.perf_counter() - started
        time.sleep(0.5)
    api.close()
    raise SystemExit(f"pods not all Running within 300 s; logs in {cp.workdir / 'logs'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100, help="kwok GPU nodes (and GPU pods)")
    parser.add_argument("--runs", type=int, default=1, help="cold starts to time")
    datasets.add_quick(parser, nodes=10)
    args = parser.parse_args()
    datasets.apply_quick(parser, args)
    cache = Path(os.environ.get("KOPILOT_CACHE", Path.home() / ".cache" / "kopilot"))
    binaries = controlplane.pinned_binaries(
        cache=cache, versions_file=REPO / "hack" / "controlplane" / "versions.env"
    )
    if binaries.missing():
        datasets.fail(
            f"control-plane binaries missing in {binaries.bin_dir}: {', '.join(binaries.missing())}; "
            "build them with `bash scripts/setup.d/50-controlplane.sh`"
        )
    print(f"binaries: {binaries.bin_dir}; load average {os.getloadavg()[0]:.1f}")
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="kopilot-cp-") as tmp:
            started = time.perf_counter()
            with controlplane.running(
                binaries=binaries, workdir=Path(tmp), clock=clocks.WallClock()
            ) as cp:
                print(f"run {run}: control plane ready in {time.perf_counter() - started:.1f} s")
                print_rss("idle", cp)
                seconds = load(cp, args.nodes)
                print(f"  {args.nodes} GPU pods Running on {args.nodes} nodes in {seconds:.1f} s")
                time.sleep(5)  # let the watch caches and informers settle
                print_rss(f"with {args.nodes} nodes + {args.nodes} pods", cp)
            print(f"  stopped in {time.perf_counter() - started:.1f} s since start")


if __name__ == "__main__":
    main()

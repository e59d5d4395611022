"""Cost of one decision of each live family (mig, idle, rightsizing) on a large snapshot.

Builds one synthetic snapshot (the point is the size, not the values): --nodes GPU nodes of 8
A100-80GB (every 4th a MIG node labelled for the GPU operator, `all-7g.80gb`), --services model
services of --replicas pods each holding one GPU, an hour of dcgm-exporter utilisation per GPU
(the GPUs of every third service idle) and of cAdvisor CPU and memory per pod (15 s step), and 200 pending pods asking for MIG slices.
Times --repeat decisions of each family's policy on it and prints the median and the worst, and
how many actions each proposed.

    python bench/live_families.py [--nodes 1000] [--services 500] [--replicas 4] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kopilot.cost import idling, resizing
from kopilot.model import cluster, resources, series
from kopilot.scheduling import migconfigs, repartitioning

NOW = 1_000_000.0
STEP = 15.0


def build(nodes: int, services: int, replicas: int) -> cluster.ClusterSnapshot:
    rng = np.random.default_rng(0)
    t = np.arange(NOW - 3600, NOW + 1, STEP)
    node_list: list[cluster.Node] = []
    metrics: dict[str, series.Series] = {}
    for i in range(nodes):
        labels = {"nvidia.com/gpu.product": "A100-80GB"}
        if i % 4 == 0:
            labels |= {migconfigs.LABEL_CONFIG: "all-7g.80gb", migconfigs.LABEL_GPU_COUNT: "8"}
        node_list.append(
            cluster.Node(
                name=f"n{i}",
                cpu_milli=96_000,
                memory_mib=1 << 20,
                gpus=tuple(cluster.Gpu(index=g, model="A100-80GB") for g in range(8)),
                labels=labels,
            )
        )
    svcs: list[cluster.ModelService] = []
    pods: list[cluster.Pod] = []
    slot = 0
    plain = [n for n in node_list if migconfigs.LABEL_CONFIG not in n.labels]
    for s in range(services):
        svcs.append(
            cluster.ModelService(
                name=f"svc-{s}",
                namespace="ml",
                replicas=replicas,
                ready_replicas=replicas,
                capacity_rps=10.0,
                cold_start_s=60.0,
                min_replicas=s % 2,
                request=resources.Resources(cpu_milli=4000, memory_mib=8192, gpus=1),
            )
        )
        for r in range(replicas):
            node = plain[(slot // 8) % len(plain)]
            name = f"svc-{s}-{r}"
            pods.append(
                cluster.Pod(
                    name=name,
                    namespace="ml",
                    request=resources.Resources(cpu_milli=4000, memory_mib=8192, gpus=1),
                    node=node.name,
                    gpu_indices=(slot % 8,),
                    phase=cluster.PodPhase.RUNNING,
                    service=f"ml/svc-{s}",
                )
            )
            slot += 1
            cpu = np.abs(0.5 + rng.normal(0, 0.05, len(t)))
            memory = 1024 + rng.normal(0, 10, len(t))
            metrics[f"pod/ml/{name}/cpu_cores"] = series.Series.of(t, cpu)
            metrics[f"pod/ml/{name}/memory_mib"] = series.Series.of(t, memory)
    holder = {(p.node, p.gpu_indices[0]): int(p.name.split("-")[1]) for p in pods}
    for node in node_list:
        for g in range(8):
            owner = holder.get((node.name, g))
            level = 0.6 if owner is not None and owner % 3 else 0.0  # every 3rd service idle
            values = np.clip(level + rng.normal(0, 0.002, len(t)), 0, 1)
            metrics[f"gpu/{node.name}/{g}/utilization"] = series.Series.of(t, values)
    for i in range(200):
        pods.append(
            cluster.Pod(
                name=f"want-{i}",
                namespace="ml",
                request=resources.Resources(mig={("1g.10gb", "3g.40gb")[i % 2]: 1}),
            )
        )
    return cluster.ClusterSnapshot(
        time=NOW, nodes=tuple(node_list), pods=tuple(pods), services=tuple(svcs), metrics=metrics
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="A small run: 100 nodes, 50 services, 1 repeat."
    )
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.services, args.repeat = 100, 50, 1
    began = time.perf_counter()
    snap = build(args.nodes, args.services, args.replicas)
    print(
        f"snapshot: {len(snap.nodes)} nodes, {len(snap.pods)} pods, {len(snap.services)} "
        f"services, {len(snap.metrics)} streams (built in {time.perf_counter() - began:.1f} s)"
    )
    policies = {
        "mig": repartitioning.RepartitionPolicy(),
        "idle": idling.IdlePolicy(idle_for_s=1800),
        "rightsizing": resizing.RightsizingPolicy(),
    }
    for name, policy in policies.items():
        times: list[float] = []
        proposed = 0
        for _ in range(args.repeat):
            start = time.perf_counter()
            decision = policy.decide(snap, policy.initial_state(), NOW)  # type: ignore[attr-defined]
            times.append(time.perf_counter() - start)
            proposed = len(decision.actions)
        print(
            f"{name:12s} median {statistics.median(times):.3f} s, worst {max(times):.3f} s, "
            f"{proposed} actions"
        )


if __name__ == "__main__":
    main()

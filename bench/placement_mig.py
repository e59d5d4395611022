"""MIG layout planner benchmark: static MIG geometries vs. the planner's, on the same pods.

A cluster of NODES x 8 A100-80GB GPUs receives a batch of MIG pods drawn from a demand mix, their
compute slices adding up to 110 % of the cluster's. Static baselines partition every GPU the same
way up front (all 1g.10gb; a common mixed 3g+2g+1g+1g; one 7g.80gb per GPU). kopilot's planner
sees the pending pods' mix and recommends a layout per GPU (Repartition actions), then the same
pods are placed. Printed: compute slices allocated / total, and pods placed, averaged over seeds.

    python bench/placement_mig.py --seeds 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter

from rich.console import Console
from rich.table import Table

import datasets  # bench/datasets.py: --quick
from kopilot.kits import randomness
from kopilot.model import cluster, gpus
from kopilot.scheduling import demands, framework, migplanning, placing, profiles, state

A100 = gpus.model_named("A100-80GB")
MIXES = {
    "small-heavy": {"1g.10gb": 0.55, "2g.20gb": 0.2, "3g.40gb": 0.15, "7g.80gb": 0.1},
    "balanced": {"1g.10gb": 0.3, "2g.20gb": 0.25, "3g.40gb": 0.25, "7g.80gb": 0.2},
    "large-heavy": {"1g.10gb": 0.15, "2g.20gb": 0.15, "3g.40gb": 0.3, "7g.80gb": 0.4},
}
STATIC = {
    "static 7x1g.10gb": ["1g.10gb"] * 7,
    "static 3g+2g+1g+1g": ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"],
    "static 1x7g.80gb": ["7g.80gb"],
}


def make_nodes(count: int, layout: list[str] | None) -> list[cluster.Node]:
    mig = gpus.pack_profiles(A100, layout) if layout else None
    return [
        cluster.Node(
            name=f"a100-{i}",
            cpu_milli=256_000,
            memory_mib=2_000_000,
            gpus=tuple(cluster.Gpu(index=g, model=A100.name, mig=mig) for g in range(8)),
        )
        for i in range(count)
    ]


def make_pods(mix: dict[str, float], capacity: int, seed: int) -> list[demands.Demand]:
    rng = randomness.rng(seed, "mig-pods")
    names, weights = list(mix), list(mix.values())
    out: list[demands.Demand] = []
    total = 0
    while total < 1.1 * capacity:
        profile = rng.choices(names, weights)[0]
        out.append(
            demands.Demand(pod=f"p{len(out)}", cpu_milli=1000, mig_profile=profile, mig_count=1)
        )
        total += A100.profile(profile).compute
    return out


def place(cl: state.ClusterState, pods: list[demands.Demand], seed: int) -> tuple[float, int]:
    sched = placing.Scheduler(cl, profiles.named("bestfit"), randomness.rng(seed, "mig-place"))
    used = placed = 0
    for d in pods:
        if isinstance(sched.schedule(d), framework.Placement):
            placed += 1
            assert d.mig_profile is not None
            used += A100.profile(d.mig_profile).compute
    return used, placed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=10)
    datasets.add_quick(parser, seeds=2)
    opts = parser.parse_args()
    datasets.apply_quick(parser, opts)
    console = Console()
    capacity = opts.nodes * 8 * gpus.COMPUTE_SLICES
    for mix_name, mix in MIXES.items():
        table = Table(
            title=f"MIG demand mix {mix_name} {mix}: compute slices allocated, {opts.seeds} seeds"
        )
        for col in ("geometry", "allocated %", "pods placed", "repartitions"):
            table.add_column(col, justify="right")
        rows: dict[str, list[tuple[float, int, int]]] = {}
        for seed in range(opts.seeds):
            pods = make_pods(mix, capacity, seed)
            for label, layout in STATIC.items():
                used, placed = place(state.ClusterState(make_nodes(opts.nodes, layout)), pods, seed)
                rows.setdefault(label, []).append((used / capacity, placed, 0))
            cl = state.ClusterState(make_nodes(opts.nodes, None))
            wanted = Counter(d.mig_profile for d in pods if d.mig_profile)
            plan = migplanning.plan(cl, wanted, model=A100.name)
            for action in plan.actions:
                cl.repartition(cl.index[action.node], action.gpu_index, action.layout)
            used, placed = place(cl, pods, seed)
            rows.setdefault("kopilot planner", []).append(
                (used / capacity, placed, len(plan.actions))
            )
        best_static = max(
            statistics.fmean(r[0] for r in v) for k, v in rows.items() if k != "kopilot planner"
        )
        for label, values in rows.items():
            table.add_row(
                label,
                f"{100 * statistics.fmean(v[0] for v in values):.1f}",
                f"{statistics.fmean(v[1] for v in values):.0f}",
                f"{statistics.fmean(v[2] for v in values):.0f}",
            )
        console.print(table)
        planner = statistics.fmean(r[0] for r in rows["kopilot planner"])
        console.print(f"{mix_name}: planner / best static geometry = {planner / best_static:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Placement benchmark, same protocol as the FGD study (Weng et al., USENIX ATC '23).

Cluster: openb_node_list_gpu_node.csv (1,213 nodes, 6,212 GPUs). Pods are sampled with
replacement from a pod list until the arrived GPU demand reaches 130 % of the GPU capacity; no
departures; a pod that fits nowhere is skipped (stays pending) and arrival continues. For each
policy and seed we record the GPU allocation ratio (allocated milli-GPU / capacity) when the
arrived demand crosses 100 % and at 130 %. The same arrival sequence is used for every policy.

    python bench/placement_fgd.py                       # default trace, 10 seeds, all policies
    python bench/placement_fgd.py --data DIR --traces all --seeds 10 --out bench/results/placement_fgd.json
    python bench/placement_fgd.py --quick               # default trace, 1 seed, bestfit/fgd/kopilot

The node list and the default pod list ship with kopilot (src/kopilot/data); the other pod lists
(--traces) come from the full data set (--data DIR holding alibaba-gpu-2023/).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import datasets  # bench/datasets.py: --data, --quick and where each data set comes from
from kopilot.kits import randomness
from kopilot.model import resources
from kopilot.scheduling import demands, framework, placing, profiles, state
from kopilot.traces import openb

NODES = datasets.BUNDLED / "openb_node_list_gpu_node.csv"  # byte-for-byte the openb copy
VARIANTS = (
    "default",
    "gpuspec05",
    "gpuspec10",
    "gpuspec20",
    "gpuspec25",
    "gpuspec33",
    "cpu0",
    "cpu037",
    "cpu050",
    "cpu072",
    "cpu100",
    "cpu200",
    "cpu235",
    "cpu250",
    "cpu300",
)
POLICIES = ("random", "dotprod", "clustering", "packing", "bestfit", "fgd", "kopilot")
PUBLISHED = {  # default trace, allocation % at 100 % / 130 % arrived (FGD paper, Fig. 7)
    "random": (86.30, 87.47),
    "dotprod": (90.62, 90.85),
    "clustering": (91.65, 91.88),
    "packing": (91.78, 92.00),
    "bestfit": (92.86, 93.08),
    "fgd": (95.23, 95.39),
}


@dataclass
class Run:
    policy: str
    seed: int
    at100: float = 0.0
    at130: float = 0.0
    arrived: int = 0
    placed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def arrivals(pool: list[demands.Demand], capacity: int, seed: int) -> list[demands.Demand]:
    """Pods sampled with replacement until their GPU demand reaches 130 % of capacity."""
    rng = randomness.rng(seed, "openb-arrivals")
    out: list[demands.Demand] = []
    arrived = 0
    while arrived < 1.3 * capacity:
        d = pool[rng.randrange(len(pool))]
        out.append(
            demands.Demand(
                pod=f"{d.pod}#{len(out)}",
                cpu_milli=d.cpu_milli,
                memory_mib=d.memory_mib,
                gpus=d.gpus,
                gpu_milli=d.gpu_milli,
                models=d.models,
            )
        )
        arrived += d.gpu_milli_total
    return out


def run_one(
    policy: str,
    *,
    seed: int,
    nodes: tuple[object, ...],
    sequence: list[demands.Demand],
    workload: object,
    timed: bool,
) -> Run:
    cluster = state.ClusterState(nodes)  # type: ignore[arg-type]
    profile = profiles.named(policy, workload=workload)  # type: ignore[arg-type]
    scheduler = placing.Scheduler(cluster, profile, randomness.rng(seed, "placement", policy))
    capacity = cluster.gpu_cap_milli
    run = Run(policy=policy, seed=seed)
    arrived = allocated = 0
    marked = False
    started = time.perf_counter()
    cpu_started = time.process_time()
    for d in sequence:
        t0 = time.perf_counter()
        c0 = time.process_time()
        decision = scheduler.schedule(d)
        if timed:
            run.latencies_ms.append((time.perf_counter() - t0) * 1000)
            run.cpu_ms.append((time.process_time() - c0) * 1000)
        arrived += d.gpu_milli_total
        if isinstance(decision, framework.Placement):
            allocated += d.gpu_milli_total
            run.placed += 1
        if not marked and arrived >= capacity:
            run.at100 = allocated / capacity
            marked = True
    run.at130 = allocated / capacity
    run.arrived = len(sequence)
    run.seconds = time.perf_counter() - started
    run.cpu_seconds = time.process_time() - cpu_started
    assert abs(cluster.allocation_ratio() - run.at130) < 1e-9
    return run


def report(console: Console, variant: str, by_policy: dict[str, list[Run]], seeds: int) -> None:
    table = Table(title=f"GPU allocation ratio, openb_pod_list_{variant}.csv, {seeds} seeds")
    columns = (
        "policy",
        "alloc % @100%",
        "alloc % @130%",
        "published @100/@130",
        "p99 ms/pod wall",
        "p99 ms/pod CPU",
        "s/run wall",
        "s/run CPU",
    )
    for col in columns:
        table.add_column(col, justify="right")
    for policy, runs in by_policy.items():
        pub = PUBLISHED.get(policy) if variant == "default" else None
        lat = np.array(runs[0].latencies_ms)
        cpu = np.array(runs[0].cpu_ms)
        table.add_row(
            policy,
            f"{100 * statistics.fmean(r.at100 for r in runs):.2f}",
            f"{100 * statistics.fmean(r.at130 for r in runs):.2f}",
            f"{pub[0]:.2f} / {pub[1]:.2f}" if pub else "-",
            f"{np.percentile(lat, 99):.2f}" if lat.size else "-",
            f"{np.percentile(cpu, 99):.2f}" if cpu.size else "-",
            f"{statistics.fmean(r.seconds for r in runs):.1f}",
            f"{statistics.fmean(r.cpu_seconds for r in runs):.1f}",
        )
    console.print(table)
    if "kopilot" in by_policy and "fgd" in by_policy:
        k130 = statistics.fmean(r.at130 for r in by_policy["kopilot"])
        f130 = statistics.fmean(r.at130 for r in by_policy["fgd"])
        k100 = statistics.fmean(r.at100 for r in by_policy["kopilot"])
        f100 = statistics.fmean(r.at100 for r in by_policy["fgd"])
        wins = sum(
            a.at130 > b.at130 for a, b in zip(by_policy["kopilot"], by_policy["fgd"], strict=True)
        )
        console.print(
            f"{variant}: kopilot/FGD allocation ratio @100% {k100 / f100:.4f}, @130% "
            f"{k130 / f130:.4f} (kopilot ahead of FGD at 130% on {wins}/{seeds} seeds)"
        )


def save(out: Path, results: dict[str, dict[str, list[Run]]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        v: {
            p: [
                {
                    "seed": r.seed,
                    "at100": r.at100,
                    "at130": r.at130,
                    "placed": r.placed,
                    "arrived": r.arrived,
                    "seconds": r.seconds,
                    "cpu_seconds": r.cpu_seconds,
                }
                for r in runs
            ]
            for p, runs in by_policy.items()
        }
        for v, by_policy in results.items()
    }
    out.write_text(json.dumps(payload, indent=1))


def pod_list(args: argparse.Namespace, variant: str) -> Path:
    """The default pod list ships with kopilot; the variants come from --data."""
    if variant == "default":
        return datasets.BUNDLED / "openb_pod_list_default.csv"
    if variant not in VARIANTS:
        datasets.fail(f"unknown trace {variant!r}; known: {', '.join(VARIANTS)}")
    root = datasets.root(args, "alibaba-gpu-2023")
    return datasets.need_file(root / "alibaba-gpu-2023" / f"openb_pod_list_{variant}.csv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--traces", default="default", help="comma list of variants, or 'all'")
    parser.add_argument("--seeds", type=int, default=None, help="default 10 (--quick 1)")
    parser.add_argument(
        "--policies", default=None, help="default all (--quick bestfit,fgd,kopilot)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    datasets.add_arguments(parser, "alibaba-gpu-2023")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (1 if args.quick else 10)
    args.policies = args.policies or ("bestfit,fgd,kopilot" if args.quick else ",".join(POLICIES))
    if args.quick and args.traces != "default":
        datasets.fail("--quick runs the bundled default trace only; the variants need --data")
    console = Console(width=150)
    variants = VARIANTS if args.traces == "all" else tuple(args.traces.split(","))
    policies = tuple(args.policies.split(","))
    paths = {v: pod_list(args, v) for v in variants}  # every file checked before the first run
    nodes = openb.load_nodes(NODES)
    results: dict[str, dict[str, list[Run]]] = {}
    wall = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("placing", total=len(variants) * len(policies) * args.seeds)
        for variant in variants:
            trace = openb.load_pods(paths[variant])
            pool = [demands.from_pod(tp.pod) for tp in trace]
            workload = profiles.workload_of(pool)
            capacity = sum(len(n.gpus) for n in nodes) * resources.GPU_MILLI
            results[variant] = {p: [] for p in policies}
            for seed in range(args.seeds):
                sequence = arrivals(pool, capacity, seed)
                for policy in policies:
                    progress.update(task, description=f"{variant} seed {seed} {policy}")
                    run = run_one(
                        policy,
                        seed=seed,
                        nodes=nodes,
                        sequence=sequence,
                        workload=workload,
                        timed=seed == 0,
                    )
                    results[variant][policy].append(run)
                    progress.advance(task)
                if args.out:
                    save(args.out, results)  # after every seed: a long run is never all lost
            report(progress.console, variant, results[variant], args.seeds)
            if args.out:
                save(args.out, results)
    cpu_total = sum(r.cpu_seconds for v in results.values() for runs in v.values() for r in runs)
    console.print(
        f"total: {len(variants)} trace(s) x {len(policies)} policies x {args.seeds} seeds in "
        f"{time.perf_counter() - wall:.0f} s wall, {cpu_total:.0f} s CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

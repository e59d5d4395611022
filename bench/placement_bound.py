"""Upper bound on the GPU allocation ratio of the FGD protocol (bench/placement_fgd.py).

For each seed, the same arrival sequence as placement_fgd.py. The bound is the optimum of a linear
relaxation of the *offline* problem: any subset of the arrived pods (a pod may stay pending, as in
the harness) may be placed, in any order, knowing all of them. No online policy can allocate more.

Nodes are grouped into types (CPU, memory, GPU count, GPU model); pods into types (CPU, memory,
whole GPUs, GPU share, allowed models). Variables x[t, k] = pods of type t on nodes of type k
(continuous). Constraints per node type k (n_k nodes, G GPUs each):
  - CPU, memory and GPU milli sums fit the n_k nodes; a pod only goes where it fits one node
    (CPU, memory, GPU count, model);
  - GPU slots: a whole-GPU pod takes its GPUs, a share > 500 milli ("big") takes a GPU of its
    own that only shares <= 1000 - m can join: f[m, k] = milli of small shares that sit beside big
    shares of size m, f[m, k] <= (1000 - m) * big pods of size m, and the small shares beside big
    pods of size >= m all have size <= 1000 - m (nested sets, so this is a valid relaxation);
    the remaining small-share milli needs whole GPUs' worth of room.
Per pod type: sum over node types of x <= the arrived count (prefix at 100 % or all at 130 %).

    python bench/placement_bound.py --seeds 10                 # default trace, bound only
    python bench/placement_bound.py --seeds 3 --with-kopilot   # also runs kopilot's policy
    python bench/placement_bound.py --quick                    # default trace, 1 seed
    python bench/placement_bound.py --data DIR --traces all    # the variants (alibaba-gpu-2023/)
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from collections.abc import Sequence

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import optimize, sparse

import datasets  # bench/datasets.py: --data, --quick and where each data set comes from
import placement_fgd  # bench/placement_fgd.py: the same data, arrivals and harness
from kopilot.model import cluster, resources
from kopilot.scheduling import demands, profiles
from kopilot.traces import openb

GPU = resources.GPU_MILLI
PodType = tuple[int, int, int, int, frozenset[str]]  # cpu, mem, gpus, gpu_milli, models
NodeType = tuple[int, int, int, str]  # cpu, mem, gpus, model


def pod_type(d: demands.Demand) -> PodType:
    return (d.cpu_milli, d.memory_mib, d.gpus, d.gpu_milli, d.models)


def node_types(nodes: Sequence[cluster.Node]) -> dict[NodeType, int]:
    out: collections.Counter[NodeType] = collections.Counter()
    for n in nodes:
        if n.gpus:
            out[(n.cpu_milli, n.memory_mib, len(n.gpus), n.gpu_model or "")] += 1
    return dict(out)


def fits(p: PodType, k: NodeType) -> bool:
    cpu, mem, gpus, milli, models = p
    return (
        cpu <= k[0]
        and mem <= k[1]
        and gpus <= k[2]
        and (not models or k[3] in models)
        and (gpus > 0 or milli > 0)
    )


def bound(counts: dict[PodType, int], kinds: dict[NodeType, int]) -> float:
    """Max GPU milli placeable (LP relaxation), as a fraction of the GPU capacity."""
    ptypes = [p for p in counts if p[2] or p[3]]
    columns: list[tuple[str, object, NodeType]] = []  # ("x", pod type, k) or ("f", m, k)
    for k in kinds:
        for p in ptypes:
            if fits(p, k):
                columns.append(("x", p, k))
        for m in sorted({p[3] for p in ptypes if p[3] > GPU // 2 and fits(p, k)}):
            columns.append(("f", m, k))
    index = {(c[0], c[1], c[2]): i for i, c in enumerate(columns)}
    gain = np.zeros(len(columns))
    for i, (kind, p, _) in enumerate(columns):
        if kind == "x":
            gain[i] = p[2] * GPU + p[3]  # type: ignore[index]
    rows: list[dict[int, float]] = []
    rhs: list[float] = []

    def add(row: dict[int, float], limit: float) -> None:
        rows.append(row)
        rhs.append(limit)

    for k, n in kinds.items():
        xs = [(index[("x", p, k)], p) for p in ptypes if ("x", p, k) in index]
        add({i: p[0] for i, p in xs}, n * k[0])
        add({i: p[1] for i, p in xs}, n * k[1])
        add({i: p[2] * GPU + p[3] for i, p in xs}, n * k[2] * GPU)
        bigs = sorted({p[3] for _, p in xs if p[3] > GPU // 2})
        slot: dict[int, float] = {}
        for i, p in xs:
            slot[i] = p[2] * GPU if p[2] else (GPU if p[3] > GPU // 2 else p[3])
        for m in bigs:
            slot[index[("f", m, k)]] = -1.0
            # f[m, k] <= (1000 - m) * big pods of size m on k
            row = {index[("f", m, k)]: 1.0}
            for i, p in xs:
                if p[3] == m:
                    row[i] = -(GPU - m)
            add(row, 0.0)
            # small shares beside big shares of size >= m all have size <= 1000 - m
            row = {index[("f", m2, k)]: 1.0 for m2 in bigs if m2 >= m}
            for i, p in xs:
                if 0 < p[3] <= GPU // 2 and p[3] <= GPU - m:
                    row[i] = -float(p[3])
            add(row, 0.0)
        add(slot, n * k[2] * GPU)
    for p in ptypes:
        add({index[("x", p, k)]: 1.0 for k in kinds if ("x", p, k) in index}, counts[p])
    a = sparse.lil_matrix((len(rows), len(columns)))
    for r, row in enumerate(rows):
        for i, v in row.items():
            a[r, i] = v
    res = optimize.linprog(
        -gain, A_ub=a.tocsr(), b_ub=np.array(rhs), bounds=(0, None), method="highs"
    )
    if res.status != 0:
        raise RuntimeError(f"LP failed: {res.message}")
    capacity = sum(n * k[2] for k, n in kinds.items()) * GPU
    return float(-res.fun) / capacity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--traces", default="default", help="comma list of variants, or 'all'")
    parser.add_argument("--seeds", type=int, default=None, help="default 10 (--quick 1)")
    parser.add_argument("--with-kopilot", action="store_true", help="also run kopilot's policy")
    datasets.add_arguments(parser, "alibaba-gpu-2023")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (1 if args.quick else 10)
    if args.quick and args.traces != "default":
        datasets.fail("--quick runs the bundled default trace only; the variants need --data")
    console = Console(width=150)
    variants = placement_fgd.VARIANTS if args.traces == "all" else tuple(args.traces.split(","))
    paths = {v: placement_fgd.pod_list(args, v) for v in variants}
    nodes = openb.load_nodes(placement_fgd.NODES)
    kinds = node_types(nodes)
    capacity = sum(len(n.gpus) for n in nodes) * GPU
    table = Table(title=f"Offline LP upper bound on GPU allocation %, {args.seeds} seeds")
    for col in ("trace", "bound @100%", "bound @130%", "kopilot @100%", "kopilot @130%", "s"):
        table.add_column(col, justify="right")
    for variant in variants:
        started = time.perf_counter()
        trace = openb.load_pods(paths[variant])
        pool = [demands.from_pod(tp.pod) for tp in trace]
        workload = profiles.workload_of(pool)
        b100: list[float] = []
        b130: list[float] = []
        k100: list[float] = []
        k130: list[float] = []
        for seed in range(args.seeds):
            sequence = placement_fgd.arrivals(pool, capacity, seed)
            arrived = 0
            prefix = len(sequence)
            for i, d in enumerate(sequence):
                arrived += d.gpu_milli_total
                if arrived >= capacity:
                    prefix = i + 1
                    break
            b100.append(bound(collections.Counter(map(pod_type, sequence[:prefix])), kinds))
            b130.append(bound(collections.Counter(map(pod_type, sequence)), kinds))
            if args.with_kopilot:
                run = placement_fgd.run_one(
                    "kopilot",
                    seed=seed,
                    nodes=nodes,
                    sequence=sequence,
                    workload=workload,
                    timed=False,
                )
                k100.append(run.at100)
                k130.append(run.at130)
            console.print(
                f"{variant} seed {seed}: bound {100 * b100[-1]:.2f} / {100 * b130[-1]:.2f}"
                + (f", kopilot {100 * k100[-1]:.2f} / {100 * k130[-1]:.2f}" if k100 else "")
            )
        table.add_row(
            variant,
            f"{100 * statistics.fmean(b100):.2f}",
            f"{100 * statistics.fmean(b130):.2f}",
            f"{100 * statistics.fmean(k100):.2f}" if k100 else "-",
            f"{100 * statistics.fmean(k130):.2f}" if k130 else "-",
            f"{time.perf_counter() - started:.0f}",
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

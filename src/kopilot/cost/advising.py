"""What `kopilot advise` reports: costs, idle GPUs, scale-to-zero candidates and three
rightsizing strategies side by side, as JSON-ready data. Pure: usage in (the `fetched` usage of
`kopilot.metrics.workloads`), figures out; the command renders them (table, CSV, HTML). The live
rightsizing family (`cost.resizing`) applies the same strategy and the same oversized rule.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from kopilot.cost import attribution, idle, rightsizing, usage
from kopilot.model import gpus as gpus_model


def _levels(rec: Any) -> dict[str, float | None]:
    return {
        r: (getattr(rec, r).value if getattr(rec, r) is not None else None)
        for r in ("cpu", "memory", "gpu", "gpu_memory")
    }


def build_report(fetched: Any, book: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """All the figures of one advise run, as JSON-ready data (pure: no I/O)."""
    window = fetched.window
    allocations = [attribution.allocate(c, window, book) for c in fetched.containers]
    groups = attribution.aggregate(allocations, settings["group_by"])
    node_idle = attribution.idle(fetched.nodes, allocations, window, book)
    total = sum((a.cost for a in allocations), attribution.Cost())
    idle_total = sum(node_idle.values(), attribution.Cost())
    threshold = settings["gpu_idle_threshold"]
    idle_found = idle.idle_gpus(
        fetched.containers, book, threshold=threshold, min_idle_s=settings["gpu_idle_for"]
    )
    zero = idle.scale_to_zero(fetched.containers)

    by_container: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for c in fetched.containers:
        by_container[(c.namespace, c.workload, c.container)].append(c)
    cost_by_wc: dict[tuple[str, str, str], attribution.Cost] = defaultdict(attribution.Cost)
    for a in allocations:
        cost_by_wc[(a.namespace, a.workload, a.container)] += a.cost
    rows: list[dict[str, Any]] = []
    recommends: list[dict[str, Any]] = []
    histories: dict[str, Any] = {}
    for key, group in sorted(by_container.items()):
        subject = "/".join(key)
        cpu_parts = tuple(usage.finite(c.cpu) for c in group if len(c.cpu))
        mem_parts = tuple(usage.finite(c.memory) for c in group if len(c.memory))
        gpus = max((c.gpus for c in group), default=0.0)
        gpu_parts = tuple(
            type(c.gpu_busy).of(c.gpu_busy.times, c.gpu_busy.values * c.gpus)
            for c in group
            if len(c.gpu_busy)
        )
        gmem_parts = tuple(usage.finite(c.gpu_memory) for c in group if len(c.gpu_memory))
        model = next((c.gpu_model for c in group if c.gpu_model), None)
        model_gib = gpus_model.model_named(model).memory_gib if model else 0
        req_cpu = max(
            (c.cpu_request.last() or 0.0 for c in group if len(c.cpu_request)), default=None
        )
        req_mem = max(
            (c.memory_request.last() or 0.0 for c in group if len(c.memory_request)), default=None
        )
        notes = sorted({n for c in group for n in c.notes})
        times = [p.times for p in cpu_parts + mem_parts if len(p)]
        span_h = (
            float(np.max(np.concatenate(times)) - np.min(np.concatenate(times))) / 3600.0
            if times
            else 0.0
        )
        row: dict[str, Any] = {
            "namespace": key[0],
            "workload": key[1],
            "container": key[2],
            "pods": len({c.pod for c in group}),
            "history_hours": round(span_h, 2),
            "cost": round(cost_by_wc[key].total, 4),
            "waste": round(cost_by_wc[key].waste, 4),
            "request": {
                "cpu": req_cpu,
                "memory": req_mem,
                "gpu": gpus or None,
                "gpu_memory": (gpus * model_gib * 1024.0**3) if gpus and model_gib else None,
            },
            "gpu_model": model,
            "mig_fit": None,
            "recommendations": {},
            "messages": list(notes),
        }
        if not times:
            row["messages"].append("no usage series: nothing to rightsize (no made-up number)")
        elif span_h * 3600 < settings["min_history"]:
            row["messages"].append(
                f"too little history: {span_h:.2f} h of samples, need at least "
                f"{settings['min_history'] / 3600:g} h (--min-history); no recommendation"
            )
        else:
            history = rightsizing.History(
                subject=subject,
                cpu=cpu_parts,
                memory=mem_parts,
                gpu=gpu_parts,
                gpu_memory=gmem_parts,
                cpu_request=req_cpu,
                memory_request=req_mem,
                gpus=gpus,
            )
            histories[subject] = (history, {})
            for strategy in rightsizing.STRATEGIES:
                rec = strategy.recommend(history)
                histories[subject][1][strategy.name] = rec
                row["recommendations"][strategy.name] = {
                    **_levels(rec),
                    "scheduled": {
                        r: list(getattr(rec, r).schedule)
                        for r in ("cpu", "memory", "gpu", "gpu_memory")
                        if getattr(rec, r) is not None and getattr(rec, r).schedule
                    },
                    "notes": list(rec.notes),
                }
                if strategy.name == "kopilot":
                    if rec.gpu is not None and rec.gpu_memory is not None:
                        row["mig_fit"] = rightsizing.fit_mig(
                            model,
                            gpu_share=rec.gpu.value,
                            gpu_memory_bytes=rec.gpu_memory.value,
                        )
                    for action in idle.oversized(
                        rec, cpu_request=req_cpu, memory_request=req_mem, gpus=gpus
                    ):
                        recommends.append(
                            {
                                "subject": action.subject,
                                "resource": action.resource,
                                "current": action.current,
                                "recommended": action.recommended,
                                "reason": action.reason,
                            }
                        )
        rows.append(row)
    waste_fraction = total.waste / total.total if total.total > 0 else 0.0
    return {
        "window": {
            "start": window.start,
            "end": window.end,
            "step": window.step,
            "hours": round(window.hours, 4),
        },
        "prometheus": settings["prometheus_url"],
        "namespace": settings["namespace"],
        "selector": settings["selector"],
        "prices": {
            "cpu_core_hour": book.cpu_core_hour,
            "ram_gib_hour": book.ram_gib_hour,
            "gpu_hour": book.gpu_hour,
            "gpu_models": dict(book.gpu_models),
            "currency": book.currency,
        },
        "totals": {
            "cost": round(total.total, 4),
            "waste": round(total.waste, 4),
            "waste_fraction": round(waste_fraction, 4),
            "cpu_cost": round(total.cpu_cost, 4),
            "ram_cost": round(total.ram_cost, 4),
            "gpu_cost": round(total.gpu_cost, 4),
            "cluster_idle_cost": round(idle_total.total, 4),
        },
        "costs": {
            "group_by": settings["group_by"],
            "groups": [
                {
                    "key": k,
                    "cost": round(c.total, 4),
                    "waste": round(c.waste, 4),
                    "cpu_cost": round(c.cpu_cost, 4),
                    "ram_cost": round(c.ram_cost, 4),
                    "gpu_cost": round(c.gpu_cost, 4),
                    "cpu_core_hours": round(c.cpu_core_hours, 4),
                    "ram_gib_hours": round(c.ram_gib_hours, 4),
                    "gpu_hours": round(c.gpu_hours, 4),
                    "efficiency": None if c.efficiency is None else round(c.efficiency, 4),
                }
                for k, c in groups.items()
            ],
            "idle_by_node": {k: round(c.total, 4) for k, c in node_idle.items()},
        },
        "idle_gpus": [
            {
                "namespace": g.namespace,
                "pod": g.pod,
                "container": g.container,
                "node": g.node,
                "gpus": g.gpus,
                "idle_hours": round(g.idle_hours, 3),
                "observed_hours": round(g.observed_hours, 3),
                "mean_busy": round(g.mean_busy, 4),
                "max_busy": round(g.max_busy, 4),
                "cost": round(g.cost, 4),
            }
            for g in idle_found
        ],
        "unattributed_gpus": [
            {"node": node, "gpu": gpu, "samples": len(s)} for node, gpu, s in fetched.idle_node_gpus
        ],
        "scale_to_zero": [
            {
                "workload": z.workload,
                "pods": z.pods,
                "max_cpu_cores": z.max_cpu_cores,
                "max_gpu_busy": z.max_gpu_busy,
                "observed_hours": round(z.observed_hours, 2),
            }
            for z in zero
        ],
        "rightsizing": rows,
        "recommend": recommends,
        "alerts": [
            {"subject": a.subject, "summary": a.summary, "reason": a.reason}
            for a in idle.idle_gpu_alerts(idle_found, threshold=threshold)
        ],
        "problems": list(fetched.problems),
        "_histories": histories,
    }

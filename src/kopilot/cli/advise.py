"""`kopilot advise`: what each workload costs, what is idle, and what its requests should be.

Reads a real Prometheus (cAdvisor, kube-state-metrics and dcgm-exporter series), prices usage
with the OpenCost rule `max(request, usage) x price`, finds idle GPUs and scale-to-zero
candidates, and puts three rightsizing strategies side by side (krr simple, VPA, kopilot).
Writes advise.json, advise.csv and a self-contained advise.html (inline SVG plots).

Exit codes: 0 = done (and waste within --fail-above); 1 = wasted share of cost above
--fail-above; 2 = bad arguments or price book; 3 = Prometheus unreachable or answered garbage.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import math
import pathlib
import re
from collections import defaultdict
from typing import Any

import typer

from kopilot.cli import checks
from kopilot.cli.app import app

EXIT_WASTE = 1
EXIT_USAGE = 2
EXIT_PROMETHEUS = 3
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, option: str) -> float:
    """`90m`, `24h`, `7d`, `2w` -> seconds; a clear error otherwise."""
    m = _DURATION.match(text.strip())
    if not m:
        raise typer.BadParameter(
            f"{text!r} is not a duration like 30m, 24h or 7d", param_hint=option
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_time(text: str | None, now: float) -> float:
    if text is None:
        return now
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise typer.BadParameter(
            f"{text!r} is neither unix seconds nor ISO 8601 (2024-05-01T12:00:00Z)",
            param_hint="--end",
        ) from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _levels(rec: Any) -> dict[str, float | None]:
    return {
        r: (getattr(rec, r).value if getattr(rec, r) is not None else None)
        for r in ("cpu", "memory", "gpu", "gpu_memory")
    }


def build_report(fetched: Any, book: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """All the figures of one advise run, as JSON-ready data (pure: no I/O)."""
    import numpy as np

    from kopilot.cost import attribution, idle, rightsizing, usage
    from kopilot.model import gpus as gpus_model

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


def _fmt(value: float | None, resource: str) -> str:
    if value is None:
        return "-"
    if resource in ("memory", "gpu_memory"):
        return f"{value / 1024**2:,.0f}Mi"
    if resource == "cpu":
        return f"{value * 1000:,.0f}m"
    return f"{value:.2f}"


def _print(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    t = report["totals"]
    cur = report["prices"]["currency"]
    console.print(
        f"[bold]Window[/bold] {report['window']['hours']:g} h   [bold]cost[/bold] {t['cost']:.2f} {cur}"
        f"   [bold]wasted[/bold] {t['waste']:.2f} ({t['waste_fraction']:.0%})"
        f"   [bold]cluster idle[/bold] {t['cluster_idle_cost']:.2f}"
    )
    costs = Table(title=f"Cost by {report['costs']['group_by']}")
    for h in ("", "cost", "CPU", "RAM", "GPU", "wasted", "efficiency"):
        costs.add_column(h, justify="left" if not h else "right")
    for g in report["costs"]["groups"]:
        eff = "-" if g["efficiency"] is None else f"{g['efficiency']:.0%}"
        costs.add_row(
            g["key"],
            f"{g['cost']:.2f}",
            f"{g['cpu_cost']:.2f}",
            f"{g['ram_cost']:.2f}",
            f"{g['gpu_cost']:.2f}",
            f"{g['waste']:.2f}",
            eff,
        )
    console.print(costs)
    if report["idle_gpus"]:
        gpus = Table(title="GPUs allocated but idle")
        for h in ("pod", "node", "GPUs", "idle h", "mean busy", "cost"):
            gpus.add_column(h, justify="left" if h in ("pod", "node") else "right")
        for g in report["idle_gpus"]:
            gpus.add_row(
                f"{g['namespace']}/{g['pod']}",
                g["node"] or "-",
                f"{g['gpus']:g}",
                f"{g['idle_hours']:.1f}",
                f"{g['mean_busy']:.1%}",
                f"{g['cost']:.2f}",
            )
        console.print(gpus)
    for z in report["scale_to_zero"]:
        console.print(
            f"[yellow]could scale to zero:[/yellow] {z['workload']} ({z['pods']} pod(s), "
            f"max CPU {z['max_cpu_cores'] * 1000:.0f}m over {z['observed_hours']:.1f} h)"
        )
    rs = Table(title="Rightsizing (request -> krr-simple | vpa | kopilot)")
    for h in ("workload/container", "resource", "request", "krr-simple", "vpa", "kopilot"):
        rs.add_column(h, justify="left" if h in ("workload/container", "resource") else "right")
    for row in report["rightsizing"]:
        name = f"{row['namespace']}/{row['workload']}/{row['container']}"
        if not row["recommendations"]:
            rs.add_row(name, "-", "-", "[red]" + "; ".join(row["messages"]) + "[/red]", "", "")
            continue
        for r in ("cpu", "memory", "gpu", "gpu_memory"):
            if r.startswith("gpu") and not row["request"]["gpu"]:
                continue
            recs = row["recommendations"]
            cells = [
                _fmt(recs[s][r], r) + ("*" if r in recs[s]["scheduled"] else "")
                for s in ("krr-simple", "vpa", "kopilot")
            ]
            rs.add_row(name, r, _fmt(row["request"][r], r), *cells)
            name = ""
        if row["mig_fit"]:
            rs.add_row("", "MIG fit", row["gpu_model"] or "", "", "", row["mig_fit"])
    console.print(rs)
    console.print(
        "[dim]* = a daily schedule; the figure is its peak. Details in advise.html.[/dim]"
    )
    for p in report["problems"]:
        console.print(f"[yellow]note:[/yellow] {p}")


def _write_csv(report: dict[str, Any], path: pathlib.Path) -> None:
    strategies = ("krr-simple", "vpa", "kopilot")
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        header = ["namespace", "workload", "container", "pods", "history_hours", "cost", "waste"]
        for r in ("cpu", "memory", "gpu", "gpu_memory"):
            header += [f"{r}_request"] + [f"{r}_{s}" for s in strategies]
        w.writerow([*header, "mig_fit", "messages"])
        for row in report["rightsizing"]:
            cells = [row[k] for k in header[:7]]
            for r in ("cpu", "memory", "gpu", "gpu_memory"):
                cells.append(row["request"][r])
                cells += [row["recommendations"].get(s, {}).get(r) for s in strategies]
            w.writerow(
                [
                    *("" if c is None else c for c in cells),
                    row["mig_fit"] or "",
                    "; ".join(row["messages"]),
                ]
            )


def _plots(report: dict[str, Any]) -> list[str]:
    import numpy as np

    from kopilot.report import plots

    out: list[str] = []
    groups = report["costs"]["groups"][:15]
    if groups:
        with plots.figure(height=max(2.0, 0.35 * len(groups) + 1)) as (fig, axes):
            ax = axes[0]
            keys = [g["key"] for g in groups][::-1]
            cost = [g["cost"] for g in groups][::-1]
            waste = [g["waste"] for g in groups][::-1]
            ax.barh(keys, cost, color="#4c78a8", label="cost")
            ax.barh(keys, waste, color="#e45756", label="of which wasted")
            ax.set_xlabel(report["prices"]["currency"])
            ax.legend(loc="lower right")
            ax.set_title(f"Cost and waste by {report['costs']['group_by']}")
            out.append(plots.to_svg(fig))
    colors = {"krr-simple": "#f58518", "vpa": "#54a24b", "kopilot": "#b279a2"}
    ranked = sorted(report["_histories"].items(), key=lambda kv: -sum(len(p) for p in kv[1][0].cpu))
    for subject, (history, recs) in ranked[:6]:
        panels = [
            ("cpu", history.cpu, 1.0, "cores", history.cpu_request),
            ("memory", history.memory, 1 / 1024**2, "MiB", history.memory_request),
        ]
        if history.gpus > 0 and history.gpu:
            panels.append(("gpu", history.gpu, 1.0, "GPUs busy", history.gpus))
        with plots.figure(height=2.6, rows=len(panels)) as (fig, axes):
            for ax, (resource, parts, scale, unit, request) in zip(axes, panels, strict=True):
                for p in parts:
                    ax.plot(
                        (p.times - report["window"]["start"]) / 3600,
                        p.values * scale,
                        lw=0.6,
                        color="#888888",
                    )
                if request:
                    ax.axhline(request * scale, color="black", ls="--", lw=1, label="request")
                t = np.linspace(report["window"]["start"], report["window"]["end"], 600)
                for name, rec in recs.items():
                    level = getattr(rec, resource)
                    if level is not None:
                        ax.plot(
                            (t - report["window"]["start"]) / 3600,
                            level.at(t) * scale,
                            color=colors.get(name, "blue"),
                            lw=1.2,
                            label=name,
                        )
                ax.set_ylabel(unit)
                ax.set_title(f"{subject}: {resource}")
                ax.legend(loc="upper right", fontsize=7)
            axes[-1].set_xlabel("hours into window")
            out.append(plots.to_svg(fig))
    return out


def _table_html(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _write_html(report: dict[str, Any], path: pathlib.Path) -> None:
    t = report["totals"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>kopilot advise</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
        "svg{max-width:100%;height:auto}.msg{color:#a33}</style></head><body>",
        "<h1>kopilot advise</h1>",
        f"<p>Window {report['window']['hours']:g} h from Prometheus {html.escape(report['prometheus'])}"
        f"; cost <b>{t['cost']:.2f} {report['prices']['currency']}</b>, wasted <b>{t['waste']:.2f}</b> "
        f"({t['waste_fraction']:.0%}), cluster idle {t['cluster_idle_cost']:.2f}. Prices: "
        f"{report['prices']['cpu_core_hour']} /core-h, {report['prices']['ram_gib_hour']} /GiB-h, "
        f"{report['prices']['gpu_hour']} /GPU-h. Cost = max(request, usage) x price (OpenCost).</p>",
    ]
    svgs = _plots(report)
    if svgs:
        parts.append(svgs[0])
    parts.append("<h2>Cost</h2>")
    parts.append(
        _table_html(
            ["key", "cost", "CPU", "RAM", "GPU", "wasted", "efficiency"],
            [
                [
                    g["key"],
                    g["cost"],
                    g["cpu_cost"],
                    g["ram_cost"],
                    g["gpu_cost"],
                    g["waste"],
                    g["efficiency"],
                ]
                for g in report["costs"]["groups"]
            ],
        )
    )
    parts.append("<h2>GPUs allocated but idle</h2>")
    parts.append(
        _table_html(
            ["pod", "node", "GPUs", "idle hours", "mean busy", "cost"],
            [
                [
                    f"{g['namespace']}/{g['pod']}",
                    g["node"],
                    g["gpus"],
                    g["idle_hours"],
                    g["mean_busy"],
                    g["cost"],
                ]
                for g in report["idle_gpus"]
            ],
        )
        if report["idle_gpus"]
        else "<p>None found.</p>"
    )
    parts.append("<h2>Could scale to zero</h2>")
    parts.append(
        _table_html(
            ["workload", "pods", "max CPU cores", "hours"],
            [
                [z["workload"], z["pods"], z["max_cpu_cores"], z["observed_hours"]]
                for z in report["scale_to_zero"]
            ],
        )
        if report["scale_to_zero"]
        else "<p>None found.</p>"
    )
    parts.append("<h2>Rightsizing</h2>")
    rows = []
    for row in report["rightsizing"]:
        name = f"{row['namespace']}/{row['workload']}/{row['container']}"
        for r in ("cpu", "memory", "gpu", "gpu_memory"):
            if r.startswith("gpu") and not row["request"]["gpu"]:
                continue
            recs = row["recommendations"]
            rows.append(
                [
                    name,
                    r,
                    _fmt(row["request"][r], r),
                    *[
                        _fmt(recs[s][r], r) if s in recs else "-"
                        for s in ("krr-simple", "vpa", "kopilot")
                    ],
                    "; ".join(row["messages"]),
                ]
            )
    parts.append(
        _table_html(
            ["container", "resource", "request", "krr-simple", "vpa", "kopilot", "messages"], rows
        )
    )
    parts.extend(svgs[1:])
    if report["problems"]:
        parts.append("<h2>Data problems</h2><ul>")
        parts.extend(f"<li class='msg'>{html.escape(p)}</li>" for p in report["problems"])
        parts.append("</ul>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts))


@app.command()
def advise(
    prometheus_url: str = typer.Option(
        ...,
        "--prometheus-url",
        envvar="KOPILOT_PROMETHEUS_URL",
        help="Prometheus base URL, e.g. http://prometheus.monitoring:9090 (env KOPILOT_PROMETHEUS_URL).",
        callback=checks.http_url,
    ),
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="Only this namespace."),
    selector: str | None = typer.Option(
        None,
        "--selector",
        "-l",
        help="Pod label selector: app=web,tier!=cache (via kube_pod_labels).",
    ),
    window: str = typer.Option("7d", "--window", help="How far back to look: 90m, 24h, 7d, 2w."),
    end: str | None = typer.Option(
        None, "--end", help="End of the window: unix seconds or ISO 8601 (default: now)."
    ),
    prices_file: pathlib.Path | None = typer.Option(
        None,
        "--prices",
        help="YAML price book (cpu_core_hour, ram_gib_hour, gpu_hour, gpu_models); "
        "default: OpenCost's on-prem prices.",
    ),
    group_by: str = typer.Option(
        "workload", "--group-by", help="Roll costs up by pod, workload, namespace or label:<name>."
    ),
    out: pathlib.Path = typer.Option(
        pathlib.Path("kopilot-advise"),
        "--out",
        help="Directory for advise.json, advise.csv, advise.html.",
    ),
    fail_above: float | None = typer.Option(
        None,
        "--fail-above",
        min=0.0,
        max=1.0,
        help="Exit 1 when wasted cost / total cost exceeds this fraction (e.g. 0.5), for CI.",
    ),
    gpu_idle_threshold: float = typer.Option(
        5.0,
        "--gpu-idle-threshold",
        min=0.0,
        max=100.0,
        help="GPU busy percent below which a GPU counts as idle.",
    ),
    gpu_idle_for: str = typer.Option(
        "1h", "--gpu-idle-for", help="How long a GPU must stay idle to count."
    ),
    min_history: str = typer.Option(
        "2h", "--min-history", help="Least history to rightsize a workload."
    ),
) -> None:
    """Price what each workload costs, find idle GPUs and waste, and recommend requests.

    Reads container_cpu_usage_seconds_total, container_memory_working_set_bytes,
    kube_pod_container_resource_requests, kube_pod_owner/info/labels, kube_node_status_capacity
    and DCGM_FI_DEV_GPU_UTIL from Prometheus. Prints tables and writes advise.json, advise.csv
    and a self-contained advise.html into --out.

    Exit codes: 0 ok; 1 wasted share above --fail-above; 2 bad arguments or price book;
    3 Prometheus unreachable or not answering like Prometheus.
    """
    from rich.console import Console

    from kopilot.cost import prices, usage
    from kopilot.kits import clocks
    from kopilot.metrics import prometheus, workloads
    from kopilot.model import errors

    console = Console()
    span = parse_duration(window, "--window")
    settings = {
        "group_by": group_by,
        "gpu_idle_threshold": gpu_idle_threshold / 100.0,
        "gpu_idle_for": parse_duration(gpu_idle_for, "--gpu-idle-for"),
        "min_history": parse_duration(min_history, "--min-history"),
        "prometheus_url": prometheus_url,
        "namespace": namespace,
        "selector": selector,
    }
    try:
        book = (
            prices.parse(prices_file.read_text(), source=str(prices_file))
            if prices_file
            else prices.PriceBook()
        )
        if group_by not in (
            "pod",
            "workload",
            "namespace",
            "container",
        ) and not group_by.startswith("label:"):
            raise errors.InvalidInputError(
                f"--group-by {group_by!r}: use pod, workload, namespace, container or label:<name>"
            )
        end_s = parse_time(end, clocks.WallClock().now())
        step = max(60.0, math.ceil(span / 1500 / 60) * 60)
        win = usage.Window(start=end_s - span, end=end_s, step=step)
    except (errors.InvalidInputError, OSError, UnicodeDecodeError) as e:
        raise checks.fail(str(e), EXIT_USAGE) from e
    try:
        with (
            console.status(f"reading {span / 3600:g} h of metrics from {prometheus_url} ..."),
            prometheus.Client(prometheus_url) as client,
        ):
            fetched = workloads.fetch(client, win, namespace=namespace, selector=selector)
    except prometheus.PrometheusError as e:
        raise checks.fail(str(e), EXIT_PROMETHEUS) from e
    except errors.InvalidInputError as e:
        raise checks.fail(str(e), EXIT_USAGE) from e
    with console.status("pricing and rightsizing ..."):
        report = build_report(fetched, book, settings)
    _print(report, console)
    checks.out_dir(out)
    histories = report.pop("_histories")
    (out / "advise.json").write_text(json.dumps(report, indent=2, default=str))
    _write_csv(report, out / "advise.csv")
    report["_histories"] = histories
    with console.status("drawing the HTML report ..."):
        _write_html(report, out / "advise.html")
    console.print(f"wrote {out / 'advise.json'}, {out / 'advise.csv'}, {out / 'advise.html'}")
    fraction = report["totals"]["waste_fraction"]
    if fail_above is not None and fraction > fail_above:
        console.print(
            f"[red]wasted {fraction:.1%} of cost, above --fail-above {fail_above:.1%}[/red]"
        )
        raise typer.Exit(EXIT_WASTE)

"""The `kopilot advise` report on disk: advise.json, advise.csv and a self-contained advise.html
(inline SVG plots), written by `kopilot advise` and, every `--advise-every`, by `kopilot run`
(`LiveAdvice`), from the same data (`kopilot.cost.advising.build_report`)."""

from __future__ import annotations

import csv
import html
import json
import math
import pathlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kopilot.cost import advising, prices, usage
from kopilot.metrics import prometheus, workloads
from kopilot.model import errors
from kopilot.report import plots


def fmt(value: float | None, resource: str) -> str:
    if value is None:
        return "-"
    if resource in ("memory", "gpu_memory"):
        return f"{value / 1024**2:,.0f}Mi"
    if resource == "cpu":
        return f"{value * 1000:,.0f}m"
    return f"{value:.2f}"


def write_csv(report: dict[str, Any], path: pathlib.Path) -> None:
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


def write_html(report: dict[str, Any], path: pathlib.Path) -> None:
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
                    fmt(row["request"][r], r),
                    *[
                        fmt(recs[s][r], r) if s in recs else "-"
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


def write_all(report: dict[str, Any], out: pathlib.Path) -> list[pathlib.Path]:
    """advise.json, advise.csv and advise.html of one report into `out` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    histories = report.pop("_histories", {})
    paths = [out / "advise.json", out / "advise.csv", out / "advise.html"]
    try:
        paths[0].write_text(json.dumps(report, indent=2, default=str))
        write_csv(report, paths[1])
    finally:
        report["_histories"] = histories
    write_html(report, paths[2])
    return paths


@dataclass(slots=True, kw_only=True)
class LiveAdvice:
    """The advise report, rewritten by the live loop every `every_s` over the last `window_s`.

    A fault (Prometheus unreachable, a disk error) is returned as a line to show, never raised:
    the loop goes on, and the next due time is tried again.
    """

    client: prometheus.Client
    out: pathlib.Path
    every_s: float
    window_s: float
    book: prices.PriceBook = field(default_factory=prices.PriceBook)
    namespace: str | None = None
    """Only this namespace (None: the whole cluster)."""
    last: float | None = None

    def due(self, now: float) -> bool:
        return self.last is None or now - self.last >= self.every_s

    def write(self, now: float) -> str:
        self.last = now
        step = max(60.0, math.ceil(self.window_s / 1500 / 60) * 60)
        window = usage.Window(start=now - self.window_s, end=now, step=step)
        settings = {
            "group_by": "workload",
            "gpu_idle_threshold": 0.05,
            "gpu_idle_for": 3600.0,
            "min_history": 7200.0,
            "prometheus_url": self.client.base_url,
            "namespace": self.namespace,
            "selector": None,
        }
        try:
            fetched = workloads.fetch(self.client, window, namespace=self.namespace)
            report = advising.build_report(fetched, self.book, settings)
            paths = write_all(report, self.out)
        except (prometheus.PrometheusError, errors.InvalidInputError, OSError) as e:
            return f"advise report not written: {e}"
        return f"advise report written: {', '.join(str(p) for p in paths)}"

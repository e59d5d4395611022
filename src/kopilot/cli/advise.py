"""`kopilot advise`: what each workload costs, what is idle, and what its requests should be.

Reads a real Prometheus (cAdvisor, kube-state-metrics and dcgm-exporter series), prices usage
with the OpenCost rule `max(request, usage) x price`, finds idle GPUs and scale-to-zero
candidates, and puts three rightsizing strategies side by side (krr simple, VPA, kopilot).
Writes advise.json, advise.csv and a self-contained advise.html (inline SVG plots).

Exit codes: 0 = done (and waste within --fail-above); 1 = wasted share of cost above
--fail-above; 2 = bad arguments or price book; 3 = Prometheus unreachable or answered garbage.
"""

from __future__ import annotations

import datetime as dt
import math
import pathlib
import re
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


def _print(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    from kopilot.report import advice

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
                advice.fmt(recs[s][r], r) + ("*" if r in recs[s]["scheduled"] else "")
                for s in ("krr-simple", "vpa", "kopilot")
            ]
            rs.add_row(name, r, advice.fmt(row["request"][r], r), *cells)
            name = ""
        if row["mig_fit"]:
            rs.add_row("", "MIG fit", row["gpu_model"] or "", "", "", row["mig_fit"])
    console.print(rs)
    console.print(
        "[dim]* = a daily schedule; the figure is its peak. Details in advise.html.[/dim]"
    )
    for p in report["problems"]:
        console.print(f"[yellow]note:[/yellow] {p}")


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

    from kopilot.cost import advising, prices, usage
    from kopilot.kits import clocks
    from kopilot.metrics import prometheus, workloads
    from kopilot.model import errors
    from kopilot.report import advice

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
        report = advising.build_report(fetched, book, settings)
    _print(report, console)
    checks.out_dir(out)
    with console.status("writing the report ..."):
        paths = advice.write_all(report, out)
    console.print("wrote " + ", ".join(str(p) for p in paths))
    fraction = report["totals"]["waste_fraction"]
    if fail_above is not None and fraction > fail_above:
        console.print(
            f"[red]wasted {fraction:.1%} of cost, above --fail-above {fail_above:.1%}[/red]"
        )
        raise typer.Exit(EXIT_WASTE)

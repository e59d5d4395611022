"""The report of `kopilot simulate`: a summary table for the terminal and an HTML page with plots."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
from rich.table import Table

from kopilot.report import plots
from kopilot.sim import clusters, runs, scenarios


def serving_table(results: Sequence[runs.ServingResult]) -> Table:
    table = Table(title="Model service under the GenAI demand curve", title_justify="left")
    for col in (
        "policy",
        "SLO-violation min",
        "unserved %",
        "replica-hours",
        "GPU-hours",
        "cost $",
        "actions taken",
        "refused",
    ):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for r in results:
        table.add_row(
            r.policy,
            f"{r.violation_minutes:.1f}",
            f"{r.unserved_pct:.2f}",
            f"{r.replica_hours:.1f}",
            f"{r.gpu_hours:.1f}",
            f"{r.cost_usd:.2f}",
            str(r.approved),
            str(r.refused),
        )
    return table


CLUSTER_HEADERS = (
    "placement",
    "pods arrived",
    "failed to place",
    "GPU alloc % at 100% arrived",
    "GPU alloc % at end",
    "stranded GPU %",
)


def _cluster_row(r: clusters.ClusterResult) -> list[str]:
    return [
        r.policy,
        str(r.arrived),
        str(r.failed),
        f"{r.allocation_at_100_pct:.2f}",
        f"{r.allocation_at_end_pct:.2f}",
        f"{r.fragmented_at_end_pct:.2f}",
    ]


def cluster_table(results: Sequence[clusters.ClusterResult]) -> Table:
    table = Table(
        title="GPU cluster fill (Alibaba openb trace, FGD protocol)", title_justify="left"
    )
    for col in CLUSTER_HEADERS:
        table.add_column(col, justify="left" if col == "placement" else "right")
    for r in results:
        table.add_row(*_cluster_row(r))
    return table


def _serving_plot(results: Sequence[runs.ServingResult]) -> str:
    with plots.figure(rows=len(results)) as (fig, axes):
        for ax, r in zip(axes, results, strict=True):
            t = r.samples["time"]
            hours = (t - t[0]) / 3600.0
            ax.fill_between(
                hours, r.samples["demand"], step="post", alpha=0.35, label="demand (req/s)"
            )
            ax.step(
                hours,
                r.samples["ready_capacity"],
                where="post",
                label="ready capacity (req/s)",
                lw=1.2,
            )
            short = np.where(
                r.samples["demand"] > r.samples["ready_capacity"] + 1e-12,
                r.samples["demand"],
                np.nan,
            )
            ax.step(hours, short, where="post", color="crimson", lw=1.5, label="SLO violation")
            ax.set_title(
                f"{r.policy}: {r.violation_minutes:.0f} SLO-violation minutes, "
                f"{r.replica_hours:.0f} replica-hours",
                loc="left",
            )
            ax.set_ylabel("req/s")
            ax.legend(loc="upper right", fontsize=7)
        axes[-1].set_xlabel("hours since trace start")
        return plots.to_svg(fig)


def _cluster_plot(results: Sequence[clusters.ClusterResult]) -> str:
    with plots.figure() as (fig, axes):
        for r in results:
            axes[0].plot(
                r.samples["arrived_pct"], r.samples["allocation_pct"], lw=1.2, label=r.policy
            )
        axes[0].axvline(100.0, color="grey", lw=0.8, ls="--")
        axes[0].set_xlabel("GPU demand arrived, % of cluster capacity")
        axes[0].set_ylabel("GPUs allocated, %")
        axes[0].legend(loc="lower right", fontsize=7)
        return plots.to_svg(fig)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(
    scenario: scenarios.Scenario,
    serving_results: Sequence[runs.ServingResult],
    cluster_results: Sequence[clusters.ClusterResult],
) -> str:
    """A self-contained page (inline SVG, no external assets)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>kopilot simulate: {html.escape(scenario.name)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}svg{max-width:100%;height:auto}"
        "</style></head><body>",
        f"<h1>kopilot simulate: {html.escape(scenario.name)}</h1>",
        f"<p>Seed {scenario.seed}. Every policy replays the same trace with the same cold starts, "
        "through the same governor; every decision is in the audit logs next to this file.</p>",
    ]
    if serving_results:
        svc = scenario.service
        parts.append("<h2>Model service</h2>")
        parts.append(
            f"<p>{html.escape(svc.namespace)}/{html.escape(svc.name)}: {svc.capacity_rps:g} req/s per "
            f"replica within the SLO, {svc.request.gpus} GPU per replica, cold start = "
            f"{svc.startup_overhead_s:g} s start-up + base-model load time from the trace.</p>"
        )
        parts.append(
            _html_table(
                [
                    "policy",
                    "SLO-violation min",
                    "unserved %",
                    "replica-hours",
                    "GPU-hours",
                    "cost $",
                    "actions",
                    "refused",
                ],
                [
                    [
                        r.policy,
                        f"{r.violation_minutes:.1f}",
                        f"{r.unserved_pct:.2f}",
                        f"{r.replica_hours:.1f}",
                        f"{r.gpu_hours:.1f}",
                        f"{r.cost_usd:.2f}",
                        str(r.approved),
                        str(r.refused),
                    ]
                    for r in serving_results
                ],
            )
        )
        parts.append("<h3>Demand vs. ready capacity</h3>")
        parts.append(_serving_plot(serving_results))
    if cluster_results:
        parts.append("<h2>GPU cluster fill</h2>")
        parts.append(
            "<p>Pods drawn from the trace (seeded, with replacement) arrive with no departures until "
            "their GPU demand reaches 130 % of the cluster's GPUs; the better the placement, the more "
            "of the cluster gets used before pods stop fitting.</p>"
        )
        parts.append(_html_table(CLUSTER_HEADERS, [_cluster_row(r) for r in cluster_results]))
        parts.append(_cluster_plot(cluster_results))
    parts.append("</body></html>\n")
    return "\n".join(parts)

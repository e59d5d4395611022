"""The report of `kopilot simulate`: a summary table for the terminal and an HTML page with plots."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
from rich.table import Table

from kopilot.report import plots
from kopilot.sim import clusters, faults, runs, scenarios

SERVING_HEADERS = (
    "policy",
    "SLO-viol. min",
    "unserved %",
    "replica-h",
    "GPU-h",
    "cost $",
    "actions",
    "refused",
)


def _serving_row(r: runs.ServingResult) -> list[str]:
    return [
        r.policy,
        f"{r.violation_minutes:.1f}",
        f"{r.unserved_pct:.2f}",
        f"{r.replica_hours:.1f}",
        f"{r.gpu_hours:.1f}",
        f"{r.cost_usd:.2f}",
        str(r.approved),
        str(r.refused),
    ]


def serving_table(results: Sequence[runs.ServingResult]) -> Table:
    table = Table(title="Model service under the GenAI demand curve", title_justify="left")
    table.caption = " ".join(
        [
            "SLO-viol. min: minutes with demand above ready capacity; unserved %: share of requests",
            *coinciding(results),
        ]
    )
    for col in SERVING_HEADERS:
        table.add_column(col, justify="left" if col == "policy" else "right")
    for r in results:
        table.add_row(*_serving_row(r))
    return table


CLUSTER_HEADERS = (
    "placement",
    "pods arrived",
    "failed",
    "GPU alloc % @100%",
    "GPU alloc % @130%",
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


VIOLATION_MIN_WIDTH = 0.004
"""A violation is drawn at least this share of the time axis wide (0.4 %, ~5 min of 22 h)."""


def _widened(mask: np.ndarray, samples: int) -> np.ndarray:
    """`mask` with each run of True grown to at least `samples` samples, so it can be seen."""
    if samples <= 1 or not mask.any():
        return mask
    kernel = np.ones(samples, dtype=int)
    return np.convolve(mask.astype(int), kernel, mode="same") > 0


def _serving_plot(results: Sequence[runs.ServingResult]) -> str:
    with plots.figure(height=2.6, rows=len(results)) as (fig, axes):
        for ax, r in zip(axes, results, strict=True):
            # About one point a minute keeps the page small; the tables carry the exact figures,
            # and a violation anywhere in a stride still shows (max over the stride).
            every = max(1, len(r.samples["time"]) // 1500)
            n = len(r.samples["time"]) // every * every
            t = r.samples["time"][:n:every]
            hours = (t - t[0]) / 3600.0
            demand = r.samples["demand"][:n].reshape(-1, every).max(axis=1)
            ready = r.samples["ready_capacity"][:n].reshape(-1, every).min(axis=1)
            ax.fill_between(hours, demand, step="post", color="tab:blue", alpha=0.3, label="demand")
            ax.step(hours, ready, where="post", color="tab:green", lw=1.4, label="ready capacity")
            short = demand > ready + 1e-12
            # The unserved part, filled, and a red band along the bottom wherever the SLO was
            # violated, each episode at least VIOLATION_MIN_WIDTH of the axis wide: a one-minute
            # shortfall in 22 hours would otherwise be thinner than a pixel.
            ax.fill_between(
                hours, ready, demand, where=short, step="post", color="crimson", alpha=0.8
            )
            band = _widened(short, int(np.ceil(VIOLATION_MIN_WIDTH * len(hours))))
            ax.fill_between(
                hours,
                0.0,
                0.09,
                where=band,
                step="post",
                color="crimson",
                transform=ax.get_xaxis_transform(),
                label="SLO violated (demand above ready capacity)",
            )
            ax.set_title(
                f"{r.policy}: {r.violation_minutes:.0f} SLO-violation minutes, "
                f"{r.replica_hours:.0f} replica-hours",
                loc="left",
            )
            ax.set_ylabel("req/s")
            ax.set_ylim(bottom=0)
            ax.margins(x=0)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=3, frameon=False)
        axes[-1].set_xlabel("hours since trace start")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
        return plots.to_svg(fig, layout=False)


CLUSTER_ZOOM_FLOOR = 85.0
"""The cluster-fill plot starts its y axis here: the policies differ between ~90 and ~97 %."""


def _cluster_plot(results: Sequence[clusters.ClusterResult]) -> str:
    with plots.figure(height=4.2) as (fig, axes):
        ax = axes[0]
        for r in results:
            line = ax.plot(
                r.samples["arrived_pct"], r.samples["allocation_pct"], lw=1.6, label=r.policy
            )
            end = float(r.samples["allocation_pct"][-1])
            ax.annotate(
                f"{r.policy} {end:.1f} %",
                (float(r.samples["arrived_pct"][-1]), end),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                color=line[0].get_color(),
            )
        ax.axvline(100.0, color="grey", lw=0.8, ls="--")
        ax.set_xlim(left=80.0)
        ax.set_ylim(CLUSTER_ZOOM_FLOOR, 100.0)
        ax.set_xlabel("GPU demand arrived, % of cluster capacity (from 80 %)")
        ax.set_ylabel(f"GPUs allocated, % (axis from {CLUSTER_ZOOM_FLOOR:.0f} %)")
        ax.legend(loc="lower right")
        ax.margins(x=0.12)
        return plots.to_svg(fig)


def coinciding(results: Sequence[runs.ServingResult]) -> list[str]:
    """A sentence for each pair of policies whose results are the same, saying why if known."""
    notes = []
    for i, a in enumerate(results):
        for b in results[i + 1 :]:
            if _serving_row(a)[1:] != _serving_row(b)[1:]:
                continue
            pair = {a.policy, b.policy}
            if pair == {"hpa", "keda"}:
                low = float(np.min(a.samples["demand"]))
                notes.append(
                    "HPA and KEDA give the same row. KEDA is the HPA from one replica up (it "
                    "feeds its metric to an HPA with the same target); it differs at zero: it "
                    "scales to zero after its cooldown when the metric is inactive and back to "
                    "one when it rises above the activation threshold. Here demand never falls "
                    f"to zero (its lowest is {low:.3g} req/s), so KEDA never leaves the HPA path "
                    "(its 30 s polling, against a demand sample every 57 s, changed no decision "
                    "either: the rows are equal)."
                )
            else:
                notes.append(
                    f"{a.policy} and {b.policy} give the same row: on this trace they took the "
                    "same decisions."
                )
    return notes


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
    fault_runs: tuple[faults.FaultRun, faults.FaultRun] | None = None,
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
        parts.append(_html_table(SERVING_HEADERS, [_serving_row(r) for r in serving_results]))
        parts.extend(f"<p>{html.escape(note)}</p>" for note in coinciding(serving_results))
        parts.append("<h3>Demand vs. ready capacity</h3>")
        parts.append(
            "<p>Blue: demand; green: capacity of the replicas that are ready; red fill: demand "
            "above it (not served within the SLO); the red band along the bottom marks every "
            "violation, short ones widened to stay visible.</p>"
        )
        parts.append(_serving_plot(serving_results))
    if cluster_results:
        parts.append("<h2>GPU cluster fill</h2>")
        parts.append(
            "<p>Pods drawn from the trace (seeded, with replacement) arrive with no departures until "
            "their GPU demand reaches 130 % of the cluster's GPUs; the better the placement, the more "
            "of the cluster gets used before pods stop fitting.</p>"
        )
        parts.append(_html_table(CLUSTER_HEADERS, [_cluster_row(r) for r in cluster_results]))
        parts.append(
            "<p>The plot is zoomed: its y axis starts at 85 % (the policies differ between about "
            "90 and 97 %); each line ends with the policy's allocation at 130 % arrived.</p>"
        )
        parts.append(_cluster_plot(cluster_results))
    if fault_runs is not None:
        parts.append(faults_html(*fault_runs))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _minutes(x: float | None) -> str:
    return "not detected" if x is None else f"{x:.1f} min"


def fault_table(observe: faults.FaultRun, remediate: faults.FaultRun) -> Table:
    table = Table(title="Injected faults: detection and remediation", title_justify="left")
    for col in ("fault", "detected after", "first remedy (governed)", "remedy after"):
        table.add_column(col)
    for o in remediate.outcomes:
        after = None if o.remedied_at is None else (o.remedied_at - o.onset) / 60.0
        table.add_row(
            o.fault,
            _minutes(o.delay_min),
            o.remedy.split(" (")[0],
            _minutes(after) if after is not None else "-",
        )
    return table


def impact_table(observe: faults.FaultRun, remediate: faults.FaultRun) -> Table:
    table = Table(title="What the remediation saved (same seed, same faults)", title_justify="left")
    for col in (
        "run",
        "OOM-kills",
        "failed requests",
        "pod-min on broken HW",
        "false alarms",
        "actions",
        "refused",
    ):
        table.add_column(col, justify="left" if col == "run" else "right")
    for name, r in (("observe only (dry-run)", observe), ("remediate", remediate)):
        table.add_row(
            name,
            str(r.impact.oom_kills),
            f"{r.impact.failed_requests:.0f}",
            f"{r.impact.pod_minutes_on_broken_hardware:.0f}",
            str(r.false_alarms),
            str(r.approved),
            str(r.refused),
        )
    return table


def _fault_plot(observe: faults.FaultRun, remediate: faults.FaultRun) -> str:
    outs = remediate.outcomes
    with plots.figure(height=2.2, rows=len(outs)) as (fig, axes):
        for ax, o in zip(axes, outs, strict=True):
            lo = o.onset - 3 * 3600
            hi = o.onset + 4 * 3600
            for run, style in ((observe, ":"), (remediate, "-")):
                m = (run.times >= lo) & (run.times <= hi)
                label = "remediate" if run.remediating else "observe only"
                ax.plot(
                    (run.times[m] - o.onset) / 3600.0,
                    run.history[o.stream][m],
                    style,
                    lw=1,
                    label=label,
                )
            ax.axvline(0.0, color="grey", lw=0.8, label="fault starts")
            if o.detected_at is not None:
                ax.axvline(
                    (o.detected_at - o.onset) / 3600.0, color="crimson", lw=1, label="detected"
                )
            ax.set_title(f"{o.fault}: {o.stream}", loc="left")
            if ax is axes[0]:
                ax.legend(loc="upper left", ncol=4, fontsize=9)
        axes[-1].set_xlabel("hours from the fault's start")
        return plots.to_svg(fig)


def faults_html(observe: faults.FaultRun, remediate: faults.FaultRun) -> str:
    rows = []
    for o in remediate.outcomes:
        after = None if o.remedied_at is None else (o.remedied_at - o.onset) / 60.0
        rows.append(
            [
                o.fault,
                _minutes(o.delay_min),
                o.remedy,
                _minutes(after) if after is not None else "-",
            ]
        )
    impact = [
        [
            name,
            str(r.impact.oom_kills),
            f"{r.impact.failed_requests:.0f}",
            f"{r.impact.pod_minutes_on_broken_hardware:.0f}",
            str(r.false_alarms),
            str(r.approved),
            str(r.refused),
        ]
        for name, r in (("observe only (dry-run)", observe), ("remediate", remediate))
    ]
    return "\n".join(
        [
            "<h2>Injected faults</h2>",
            "<p>Twelve replicas on six GPU nodes; after a day of normal metrics, four faults are "
            "injected. The same seed runs once observing only and once remediating through the "
            "governor.</p>",
            _html_table(
                ["fault", "detected after", "first remedy (governed)", "remedy after"], rows
            ),
            _html_table(
                [
                    "run",
                    "OOM-kills",
                    "failed requests",
                    "pod-min on broken HW",
                    "false alarms",
                    "actions",
                    "refused",
                ],
                impact,
            ),
            _fault_plot(observe, remediate),
        ]
    )

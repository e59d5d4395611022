"""`kopilot simulate`: run the digital twin on a scenario and compare policies side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from kopilot.cli import checks
from kopilot.cli.app import app


@app.command()
def simulate(
    scenario: Path | None = typer.Option(
        None,
        "--scenario",
        "-s",
        help="A scenario YAML file (see docs/scenario.example.yaml). Default: the bundled GenAI day.",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
    out: Path = typer.Option(
        Path("kopilot-report"),
        "--out",
        "-o",
        help="Folder for the HTML report and the audit logs (one JSONL per policy).",
        file_okay=False,
    ),
    seed: int | None = typer.Option(None, help="Override the scenario's random seed."),
    no_cluster: bool = typer.Option(
        False, "--no-cluster", help="Skip the GPU cluster fill (the scheduling half)."
    ),
    with_faults: bool = typer.Option(
        False,
        "--faults",
        help=(
            "Also run the fault twin: inject a memory leak, a GPU with rising XID errors, a node "
            "going bad and a latency regression, and report detection delay, false alarms and what "
            "the governed remediation saved (observe-only vs remediate, same seed). Adds a minute or two."
        ),
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run the embedded digital twin and compare policies side by side.

    With no options it replays the bundled real traces: 22.3 hours of the Alibaba GenAI
    request-rate curve against a GPU-served model with real cold starts (Kubernetes HPA vs
    kopilot's predictive policy, through the same governor), plus the Alibaba GPU cluster trace
    filling 1,213 GPU nodes (placement policies side by side). It prints a summary table and
    writes OUT/report.html (plots) and OUT/audit-<policy>.jsonl (every decision, with reasons).
    The same seed and inputs give byte-identical reports and audit logs.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskID,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from kopilot.governance import audit as audit_log
    from kopilot.kits import randomness
    from kopilot.model import errors
    from kopilot.report import simulation as report
    from kopilot.sim import clusters, faults, runs, scenarios
    from kopilot.traces import openb

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # piped or captured: room for the tables, not 80 columns
    err = Console(stderr=True)
    try:
        sc = scenarios.load(scenario) if scenario is not None else scenarios.default()
        if seed is not None:
            sc = sc.model_copy(update={"seed": seed})
        base = scenario.parent if scenario is not None else None
        inputs = runs.serving_inputs(sc, base)
        cluster_inputs = None
        if sc.cluster is not None and not no_cluster:
            nodes = openb.load_nodes(scenarios.locate(sc.cluster.nodes_trace, base))
            pods = openb.load_pods(scenarios.locate(sc.cluster.pods_trace, base))
            unknown = [p for p in sc.cluster.policies if p not in clusters.PLACERS]
            if unknown:
                raise errors.InvalidInputError(
                    f"cluster.policies: unknown placement {unknown}; choose from {sorted(clusters.PLACERS)}"
                )
            cluster_inputs = (nodes, pods)
    except errors.KopilotError as e:
        raise checks.fail(str(e)) from e

    checks.out_dir(out)
    serving_results = []
    cluster_results = []
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
        transient=False,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(what: str, fraction: float) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=1.0)
            bar.update(tasks[what], completed=fraction)

        for name in sc.policies:
            serving_results.append(
                runs.run_serving(
                    sc, inputs, name, audit_path=out / f"audit-{name}.jsonl", progress=progress
                )
            )
        if cluster_inputs is not None and sc.cluster is not None:
            nodes, pods = cluster_inputs
            for name in sc.cluster.policies:
                placer = clusters.PLACERS[name](nodes, pods, randomness.rng(sc.seed, "placement"))
                rng = randomness.rng(sc.seed, "cluster-arrivals")
                cluster_results.append(clusters.fill(nodes, pods, placer, rng, progress=progress))

        fault_runs = None
        if with_faults:
            plan = faults.FaultPlan()
            load = faults.load_curve(inputs.demand, plan.hours)
            observe, remediate = (
                faults.run(
                    load,
                    plan,
                    lambda: randomness.rng(sc.seed, "faults"),
                    remediate=rem,
                    audit_path=audit_log.AuditLog(
                        out / f"audit-faults-{'remediate' if rem else 'observe'}.jsonl", fresh=True
                    ),
                    progress=progress,
                )
                for rem in (False, True)
            )
            fault_runs = (observe, remediate)

    console.print(report.serving_table(serving_results))
    if cluster_results:
        console.print(report.cluster_table(cluster_results))
    if fault_runs is not None:
        console.print(report.fault_table(*fault_runs))
        console.print(report.impact_table(*fault_runs))
    page = out / "report.html"
    page.write_text(
        report.render_html(sc, serving_results, cluster_results, fault_runs), encoding="utf-8"
    )
    console.print(f"report: {page}   audit logs: {out}/audit-*.jsonl")

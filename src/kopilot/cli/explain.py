"""`kopilot explain`: why a pod went where it went, or why it is pending."""

from __future__ import annotations

from importlib import resources as importlib_resources
from pathlib import Path

import typer

from kopilot.cli import checks
from kopilot.cli.app import app

DATA = Path(str(importlib_resources.files("kopilot") / "data"))
"""The bundled openb node and pod lists (see kopilot/data/SOURCE.md)."""


@app.command()
def explain(
    pod: str = typer.Argument(..., help="Name of the pod to explain (a row of the pod list)."),
    nodes: Path = typer.Option(
        DATA / "openb_node_list_gpu_node.csv", help="Node list CSV (openb format)."
    ),
    pods: Path = typer.Option(
        DATA / "openb_pod_list_default.csv", help="Pod list CSV (openb format), placed in order."
    ),
    profile: str = typer.Option("kopilot", help="Placement profile to explain."),
    node: list[str] = typer.Option(
        [], "--node", help="Also show every plugin's verdict on this node (repeatable)."
    ),
    top: int = typer.Option(5, min=0, help="How many runner-up nodes to show."),
    seed: int = typer.Option(0, help="Seed of the tie-breaking random stream."),
) -> None:
    """Replay a pod list in order up to POD, then show the decision for POD.

    Shows each filter's count of rejected nodes (as kube-scheduler's "0/N nodes are available"
    message), the chosen node and GPUs with each score plugin's 0-100 score and weight, the
    runner-up nodes, and with --node the verdict of every plugin on that node.
    """
    import numpy as np
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from kopilot.kits import randomness
    from kopilot.model import errors
    from kopilot.scheduling import demands, framework, placing, profiles, state
    from kopilot.traces import openb

    console = Console()
    try:
        node_list = openb.load_nodes(nodes)
        trace = openb.load_pods(pods)
        chosen = [tp for tp in trace if tp.pod.name == pod]
        if not chosen:
            raise errors.InvalidInputError(f"{pods}: no pod named {pod!r}")
        workload = profiles.workload_of(demands.from_pod(tp.pod) for tp in trace)
        cluster = state.ClusterState(node_list)
        scheduler = placing.Scheduler(
            cluster, profiles.named(profile, workload=workload), randomness.rng(seed, "explain")
        )
    except errors.KopilotError as e:
        raise checks.fail(str(e)) from e
    for tp in track(trace, description="replaying", console=console, transient=True):
        if tp.pod.name == pod:
            break
        scheduler.schedule(tp.pod)
    decision = placing.decide(
        cluster, demands.from_pod(chosen[0].pod), scheduler.profile, scheduler.rng, explain=True
    )
    console.print(f"[bold]{pod}[/bold]: {demands.from_pod(chosen[0].pod).describe()}")
    filt = Table(title="filters (nodes each one rejected, in order)")
    for col in ("filter", "rejected", "reason"):
        filt.add_column(col)
    for f in decision.filters:
        filt.add_row(f.plugin, str(f.rejected), f.reason if f.rejected else "")
    console.print(filt)
    if isinstance(decision, framework.Unschedulable):
        console.print(f"[yellow]pending[/yellow]: {decision.reason()} ({decision.status.code})")
    else:
        console.print(f"[green]placed[/green]: {decision.reason()}")
        table = decision.table
        if table is not None and table.total is not None:
            order = [int(i) for i in np.argsort(-np.nan_to_num(table.total, nan=-1e18))[: top + 1]]
            ranked = Table(title="best nodes (0-100 per plugin, weighted total)")
            ranked.add_column("node")
            for name in table.scores:
                ranked.add_column(f"{name} x{table.weights[name]:g}", justify="right")
            ranked.add_column("total", justify="right")
            for i in order:
                if np.isnan(table.total[i]):
                    break
                ranked.add_row(
                    table.names[i],
                    *(f"{table.scores[s][i]:.1f}" for s in table.scores),
                    f"{table.total[i]:.1f}",
                )
            console.print(ranked)
    for name in node:
        lines = decision.table.why(name) if decision.table is not None else []
        console.print(f"[bold]{name}[/bold]:")
        for line in lines:
            console.print(f"  {line}")

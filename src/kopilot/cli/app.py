"""The `kopilot` command group; each sub-command lives in a module of its own in this package."""

from __future__ import annotations

from importlib import metadata

import typer

app = typer.Typer(
    name="kopilot",
    help=(
        "kopilot: an autopilot for AI workloads on Kubernetes.\n\n"
        "It places GPU pods to keep fragmentation low, scales model services ahead of demand "
        "(and to zero), detects anomalies and remediates them, and prices what is idle - always "
        "inside guardrails you set (dry-run, limits, blast radius, approvals, an audit log).\n\n"
        "Start with `kopilot simulate`: it runs the embedded digital twin on bundled real traces."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"kopilot {metadata.version('kopilot')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print kopilot's version and exit.",
    ),
) -> None:
    """kopilot: an autopilot for AI workloads on Kubernetes."""

"""`kopilot run`'s metrics server flags: loopback unless told otherwise (the chart says 0.0.0.0),
and /metrics open unless --metrics-auth (the chart turns it on)."""

from __future__ import annotations

from typing import Any

import typer

from kopilot.cli import app


def _run_params() -> dict[str, Any]:
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params}


def test_the_metrics_server_binds_loopback_by_default() -> None:
    assert _run_params()["metrics_host"].default == "127.0.0.1"


def test_metrics_auth_is_an_opt_in_switch() -> None:
    auth = _run_params()["metrics_auth"]
    assert auth.default is False
    assert auth.opts == ["--metrics-auth"] and auth.secondary_opts == ["--no-metrics-auth"]

"""`kopilot scaler` is on the command line and explains itself."""

from __future__ import annotations

from typer.testing import CliRunner

from kopilot.cli import app


def test_scaler_help_explains_the_metadata() -> None:
    result = CliRunner().invoke(app, ["scaler", "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "KEDA external scaler" in text
    assert "capacityRps" in text and "--demand-dir" in text


def test_scaler_refuses_a_missing_demand_dir() -> None:
    result = CliRunner().invoke(app, ["scaler", "--demand-dir", "/nonexistent/kopilot"])
    assert result.exit_code != 0
    assert "does not exist" in " ".join(result.output.split())

"""`kopilot scaler` is on the command line and explains itself."""

from __future__ import annotations

from pathlib import Path

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


def test_scaler_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    from kopilot.kits import clocks
    from kopilot.scaling.keda import server, sources

    running = server.start(
        server.Scaler(sources.CsvDirectory(tmp_path), clocks.VirtualClock(0.0)), "127.0.0.1:0"
    )
    try:
        result = CliRunner().invoke(
            app, ["scaler", "--demand-dir", str(tmp_path), "--port", str(running.port)]
        )
    finally:
        running.stop(grace=None)
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "cannot bind the scaler" in text and "Traceback" not in text

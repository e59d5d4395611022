"""`kopilot --version` prints the installed distribution's version (the images' smoke test runs it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from typer.testing import CliRunner

from kopilot.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_version_prints_the_project_version_and_exits() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"kopilot {version}\n"

"""Command-line entry point: `kopilot --help` lists every command."""

from __future__ import annotations

from kopilot.cli import scaler as _scaler  # noqa: F401  (registers the command)
from kopilot.cli import advise as _advise  # noqa: F401  (registers the command)
from kopilot.cli import serve as _serve  # noqa: F401  (registers the command)
from kopilot.cli import governance as _governance  # noqa: F401  (registers the commands)
from kopilot.cli import simulate as _simulate  # noqa: F401  (registers the command)
from kopilot.cli.app import app


def main() -> None:
    """Run the `kopilot` command line."""
    app()


__all__ = ["app", "main"]

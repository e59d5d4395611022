"""Command-line entry point: `kopilot --help` lists every command.

Each module in this package (other than `app`) registers its commands on `app` when imported; they
are all imported here, in name order, so adding a command means adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil

from kopilot.cli.app import app

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in {"app", "__main__"}:
        importlib.import_module(f"{__name__}.{_info.name}")


def main() -> None:
    """Run the `kopilot` command line."""
    app()


__all__ = ["app", "main"]

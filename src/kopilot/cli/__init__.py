"""Command-line entry point: `kopilot --help` lists every command.

Each module in this package (other than `app`) registers its commands on `app` when imported; they
are all imported here, in name order, so adding a command means adding a module.

`main` turns what a user can get wrong into one line on stderr and exit code 2: a bad option or
argument (click's usage errors, printed without the usage block), and a command whose optional
dependencies are not installed (naming the extra to install).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from kopilot.cli import checks
from kopilot.cli.app import app

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in {"app", "__main__", "checks"}:
        importlib.import_module(f"{__name__}.{_info.name}")


def main(argv: list[str] | None = None) -> None:
    """Run the `kopilot` command line; exits with the command's code."""
    args = (sys.argv[1:] if argv is None else argv) or ["--help"]
    command = next((a for a in args if not a.startswith("-")), None)
    known = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    where = f"kopilot {command}" if command in known else "kopilot"
    try:
        code = app(args=args, prog_name="kopilot", standalone_mode=False)
    except typer.Abort:
        code = 130
    except typer.TyperException as e:  # click's usage errors (typer bundles click)
        format_message = getattr(e, "format_message", None)
        text = format_message() if callable(format_message) else str(e)
        checks.say_error(f"{where}: {text} (see `{where} --help`)")
        code = getattr(e, "exit_code", checks.EXIT_USAGE)
    except ModuleNotFoundError as e:
        extra = checks.missing_extra(e.name)
        if extra is None:
            raise
        checks.say_error(
            f"{where} needs {e.name}, which comes with the {extra!r} extra: "
            f"pip install 'kopilot[{extra}]'"
        )
        code = checks.EXIT_USAGE
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]

"""Checks on what a user types, shared by the commands, and the one-line error each ends in.

Ports are checked by the options themselves (`min=0, max=65535`); URLs and output folders here.

A user's mistake (a port out of range, a URL that is not one, a folder that cannot be made, a
command whose optional dependencies are not installed) ends in one line on stderr saying what
was wrong and what to do, and exit code 2; never in a traceback.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import typer

EXIT_USAGE = 2

# Top-level module -> the extra that installs it (pyproject.toml [project.optional-dependencies]).
EXTRAS = {
    "kubernetes": "kube",
    "grpc": "scaler",
    "google": "scaler",  # google.protobuf
    "onnxruntime": "serve",
    "onnx": "serve",
    "PIL": "serve",
    "starlette": "serve",
    "multipart": "serve",
    "python_multipart": "serve",
}


def one_line(text: str) -> str:
    """The message on one line: newlines and runs of spaces folded."""
    return " ".join(text.split())


def say_error(message: str) -> None:
    """Print `error: message` as one line on stderr (never wrapped, whatever the width)."""
    typer.echo(f"error: {one_line(message)}", err=True)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print the error line; return the Exit to raise (`raise checks.fail(...) from e`)."""
    say_error(message)
    return typer.Exit(code)


def missing_extra(module: str | None) -> str | None:
    """The extra a missing module comes with, or None when it is not an optional dependency."""
    top = (module or "").split(".")[0]
    return EXTRAS.get(top)


def http_url(value: str | None) -> str | None:
    """An http(s) URL with a host, such as http://prometheus:9090."""
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError as e:
        raise typer.BadParameter(f"{value!r}: {e}") from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(
            f"{value!r} is not an http(s) URL; give one like http://prometheus:9090"
        )
    return value


def out_dir(path: Path, option: str = "--out") -> Path:
    """Make the output folder (and its parents), or fail with the reason in one line."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise typer.BadParameter(
            f"cannot create folder {str(path)!r}: {e.strerror or e}", param_hint=option
        ) from e
    return path

"""User files in YAML (scenarios, governance policies, price books), checked by a pydantic schema.

A bad file raises `InvalidInputError` that names the file, each wrong field and why, so a person
can fix it without reading a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pydantic
import yaml

from kopilot.model import errors

M = TypeVar("M", bound=pydantic.BaseModel)


def field_errors(e: pydantic.ValidationError) -> str:
    """`a.b: reason; c: reason` for every problem pydantic found."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
        for err in e.errors()
    )


def _one_line(e: yaml.YAMLError) -> str:
    """PyYAML's problem and where, on one line (its own message spans several, with a caret)."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        mark = e.problem_mark
        return f"{e.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(e).split())


def parse(text: str, schema: type[M], *, source: str, what: str) -> M:
    """Parse YAML `text` into `schema`; `what` names the kind of file in messages ("scenario")."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise errors.InvalidInputError(f"{what} {source}: not valid YAML ({_one_line(e)})") from e
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise errors.InvalidInputError(
            f"{what} {source}: the top level must be a mapping of fields, got {type(raw).__name__}"
        )
    try:
        return schema.model_validate(raw)
    except pydantic.ValidationError as e:
        raise errors.InvalidInputError(f"{what} {source}: {field_errors(e)}") from e


def load(path: Path, schema: type[M], *, what: str) -> M:
    """Read and parse a YAML file into `schema`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise errors.InvalidInputError(f"{what} {path}: cannot read it ({e.strerror})") from e
    return parse(text, schema, source=str(path), what=what)

"""constraints.txt pins every dependency of every extra within pyproject.toml's bounds.

CI (scripts/test.sh) and the images (scripts/build-images.sh) install with it: a bound changed in
pyproject.toml without recompiling the pins fails here, not in an image build.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]


def requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += extra
    found = [Requirement(r) for r in declared]
    return [r for r in found if canonicalize_name(r.name) != "kopilot"]


def pins(text: str) -> dict[str, Version]:
    pinned = {}
    for line in text.splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            name, version = spec.split("==")
            pinned[canonicalize_name(name)] = Version(version.split(";")[0].strip())
    return pinned


def violations(reqs: list[Requirement], pinned: dict[str, Version]) -> list[str]:
    wrong = []
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate({"sys_platform": "linux"}):
            continue
        version = pinned.get(canonicalize_name(req.name))
        if version is None:
            wrong.append(f"{req.name}: not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            wrong.append(f"{req.name}=={version} outside {req.specifier}")
    return wrong


def test_every_dependency_is_pinned_within_its_bounds() -> None:
    pinned = pins((REPO / "constraints.txt").read_text())
    assert violations(requirements(), pinned) == []


def test_a_pin_outside_the_bounds_or_missing_is_found() -> None:
    reqs = [Requirement("numpy>=1.26,<3"), Requirement("httpx>=0.27,<1")]
    assert violations(reqs, pins("numpy==3.0.0\n")) == [
        "numpy==3.0.0 outside <3,>=1.26",
        "httpx: not pinned",
    ]

"""Fixtures for the chart and image tests: helm (built beside the test control plane)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.kube.conftest import binaries


def missing(message: str) -> None:
    """Skip locally, fail under CI=true: CI must never pass by not running these tests."""
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned helm binary built beside the control plane."""
    path = binaries().bin_dir / "helm"
    if not os.access(path, os.X_OK):
        missing(
            f"helm missing in {path.parent}. Build it with `bash scripts/setup.d/50-controlplane.sh`."
        )
    return path

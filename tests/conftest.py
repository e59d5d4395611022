"""Shared fixtures. Keep this small: only fixtures, each documented."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fixtures import prometheus as _prometheus


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_prometheus.Server]:
    """A real Prometheus on 127.0.0.1 loaded with history from real traces (see
    tests/fixtures/prometheus.py); stopped at the end of the session. In CI a missing binary
    fails the test instead of skipping it."""
    why = _prometheus.available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"real Prometheus needed: {why}")
        pytest.skip(why)
    with _prometheus.running(tmp_path_factory.mktemp("prometheus")) as server:
        yield server

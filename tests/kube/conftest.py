"""A real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) for tests/kube.

The binaries are built by `bash scripts/setup.d/50-controlplane.sh` into
$KOPILOT_CACHE/controlplane/<K8S_VERSION>/bin. Without them the fixture skips locally and fails
under CI=true, so a CI run can never pass by silently not starting the control plane.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from kopilot.kits import clocks
from kopilot.kube import controlplane

REPO = Path(__file__).resolve().parents[2]


VERSIONS = REPO / "hack" / "controlplane" / "versions.env"


def binaries() -> controlplane.Binaries:
    cache = Path(os.environ.get("KOPILOT_CACHE", Path.home() / ".cache" / "kopilot"))
    return controlplane.pinned_binaries(cache=cache, versions_file=VERSIONS)


def _missing(what: str, where: Path) -> None:
    """Skip locally, fail under CI=true: CI must never pass by not running these tests."""
    message = (
        f"{what} missing in {where}. Build them with `bash scripts/setup.d/50-controlplane.sh`."
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    """The running control plane; stopped (every process killed) at the end of the session."""
    found = binaries()
    missing = found.missing()
    if missing:
        _missing(f"control-plane binaries ({', '.join(missing)})", found.bin_dir)
    with contextlib.ExitStack() as stack:
        for attempt in (1, 2):
            # Free ports are picked, then released before the components bind them: on a busy
            # machine another process can take one in between. That start-up fault (only) is
            # worth one more try with fresh ports; a second failure is reported as it is.
            workdir = tmp_path_factory.mktemp("controlplane")
            try:
                cp = stack.enter_context(
                    controlplane.running(binaries=found, workdir=workdir, clock=clocks.WallClock())
                )
                break
            except controlplane.ControlPlaneError:
                if attempt == 2:
                    raise
        yield cp


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned helm binary built beside the control plane."""
    path = binaries().bin_dir / "helm"
    if not os.access(path, os.X_OK):
        _missing("helm", path.parent)
    return path


@pytest.fixture(scope="session")
def kubeconfig(control_plane: controlplane.ControlPlane) -> Path:
    """Path of an admin kubeconfig for the test control plane."""
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    """An official-client ApiClient bound to the test control plane (no global config touched)."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api
    finally:
        api.close()

"""Finding the control-plane binaries: pinned versions file, missing parts named, clear errors.

No control plane is started here (the real one is tests/kube/test_controlplane.py); the build
script runs against a fake cache with no Go on PATH, so it cannot start a build.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kopilot.kube import controlplane

REPO = Path(__file__).resolve().parents[2]


def test_the_repos_versions_file_pins_every_component() -> None:
    versions = controlplane.read_versions(REPO / "hack" / "controlplane" / "versions.env")
    assert set(versions) >= {"K8S_VERSION", "ETCD_VERSION", "KWOK_VERSION", "HELM_VERSION"}
    go_mod = (REPO / "hack" / "controlplane" / "go.mod").read_text()
    assert f"k8s.io/kubernetes {versions['K8S_VERSION']}" in go_mod
    assert f"go.etcd.io/etcd/server/v3 {versions['ETCD_VERSION']}" in go_mod
    staging = "v0." + versions["K8S_VERSION"].removeprefix("v1.")
    assert f"k8s.io/client-go => k8s.io/client-go {staging}" in go_mod


def test_binaries_live_under_the_cache_by_kubernetes_version(tmp_path: Path) -> None:
    versions = tmp_path / "versions.env"
    versions.write_text("# pinned\nK8S_VERSION=v1.2.3\n\nKWOK_VERSION = v0.1.0\n")
    found = controlplane.pinned_binaries(cache=tmp_path / "cache", versions_file=versions)
    assert found.bin_dir == tmp_path / "cache" / "controlplane" / "v1.2.3" / "bin"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("K8S_VERSION v1.2.3\n", ":1: expected KEY=value"),
        ("KWOK_VERSION=v0.1.0\n", "no K8S_VERSION"),
    ],
)
def test_a_bad_versions_file_names_the_line(tmp_path: Path, text: str, complaint: str) -> None:
    versions = tmp_path / "versions.env"
    versions.write_text(text)
    with pytest.raises(controlplane.ControlPlaneError, match=complaint):
        controlplane.read_versions(versions)


def test_missing_binaries_are_named_with_the_command_that_builds_them(tmp_path: Path) -> None:
    (tmp_path / "etcd").write_text("#!/bin/sh\n")
    (tmp_path / "etcd").chmod(0o755)
    (tmp_path / "kwok").write_text("not executable")
    found = controlplane.Binaries(bin_dir=tmp_path)
    assert found.missing() == [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "kwok-stages.yaml",
    ]
    with pytest.raises(controlplane.BinariesMissingError, match=r"setup\.d/50-controlplane\.sh"):
        found.require()


def _fake_cache(tmp_path: Path, versions: str) -> Path:
    """A $KOPILOT_CACHE whose control plane looks built, for the versions given."""
    k8s = controlplane.read_versions(REPO / "hack" / "controlplane" / "versions.env")["K8S_VERSION"]
    dest = tmp_path / "cache" / "controlplane" / k8s
    (dest / "bin").mkdir(parents=True)
    for name in (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "helm",
    ):
        exe = dest / "bin" / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    (dest / "bin" / "kwok-stages.yaml").write_text("---\n")
    (dest / "versions.env").write_text(versions)
    return tmp_path / "cache"


def _build(cache: Path) -> subprocess.CompletedProcess[str]:
    # No Go on PATH: a build that would start fails at once, naming Go.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cache.parent), "KOPILOT_CACHE": str(cache)}
    return subprocess.run(
        ["bash", str(REPO / "hack" / "controlplane" / "build.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_build_is_a_no_op_when_the_cache_holds_these_versions(tmp_path: Path) -> None:
    same = (REPO / "hack" / "controlplane" / "versions.env").read_text()
    done = _build(_fake_cache(tmp_path, same))
    assert done.returncode == 0 and "binaries present" in done.stdout, done.stderr


def test_a_cache_built_for_other_versions_is_not_taken_as_built(tmp_path: Path) -> None:
    other = (
        (REPO / "hack" / "controlplane" / "versions.env")
        .read_text()
        .replace("KWOK_VERSION=", "KWOK_VERSION=v0.0.1-old #")
    )
    done = _build(_fake_cache(tmp_path, other))
    assert done.returncode == 1 and "'go' not found" in done.stderr

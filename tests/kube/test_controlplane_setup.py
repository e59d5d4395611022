"""Finding the control-plane binaries: pinned versions file, missing parts named, clear errors.

No processes are started here (the real control plane is tests/kube/test_controlplane.py).
"""

from __future__ import annotations

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

"""The images scripts/build-images.sh builds, as the tests see them: their names and users, the
buildah flags they are stored with, and fixtures that make sure they are current."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import missing

REPO = Path(__file__).resolve().parents[2]
BUILDAH = ["buildah", "--storage-driver", "vfs"]
VERSION = yaml.safe_load((REPO / "deploy" / "helm" / "kopilot" / "Chart.yaml").read_text())[
    "appVersion"
]
CONTROLLER = f"localhost/kopilot-controller:{VERSION}"
SERVING = f"localhost/kopilot-serving:{VERSION}"
# image -> (the chart that runs it, the user it runs as)
IMAGES = {CONTROLLER: ("kopilot", "65532"), SERVING: ("model-service", "10001")}


@pytest.fixture(scope="session", name="built")
def built_fixture() -> None:
    """Both images, built from this checkout's sources, constraints and build script."""
    if shutil.which("buildah") is None:
        missing("buildah is not installed: run `bash scripts/setup.d/60-images.sh`")
    check = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-images.sh"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        missing(f"images are not current: {check.stderr.strip()}")


@pytest.fixture(scope="module", name="containers")
def containers_fixture(built: None) -> Iterator[dict[str, str]]:
    """One working container per image (a vfs container is a full copy: made once, removed after)."""
    made: dict[str, str] = {}
    try:
        for image in IMAGES:
            made[image] = subprocess.run(
                [*BUILDAH, "from", "--pull-never", image],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        yield made
    finally:
        for name in made.values():
            subprocess.run([*BUILDAH, "rm", name], capture_output=True, check=False)


def entrypoint(image: str) -> list[str]:
    """The image's ENTRYPOINT (buildah run runs the command it is given, not the entry point)."""
    template = "{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}"
    out = subprocess.run(
        [*BUILDAH, "inspect", "--type", "image", "--format", template, image],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def run(name: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BUILDAH, "run", "--isolation", "chroot", name, "--", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

"""The two images scripts/build-images.sh builds run their entry points, as the users the charts
expect, and the serving image answers its health checks and a detection from inside the image.

Each image runs with `buildah run` (vfs storage, chroot isolation: the host's network, so the
server listens on 127.0.0.1 only). Without buildah, or with images built from other inputs than
this checkout's, the tests skip locally and fail under CI=true (scripts/setup.d/60-images.sh
builds them).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.deploy.images import (  # noqa: F401 (fixtures)
    BUILDAH,
    IMAGES,
    REPO,
    SERVING,
    VERSION,
    built_fixture,
    containers_fixture,
    entrypoint,
    run,
)
from tests.serving import onnx_models

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SAMPLE = REPO / "tests" / "serving" / "data" / "bus.jpg"


@pytest.mark.parametrize("image", list(IMAGES))
def test_each_image_runs_its_entry_point_as_its_unprivileged_user(
    containers: dict[str, str], image: str
) -> None:
    _, user = IMAGES[image]
    name = containers[image]
    version = run(name, *entrypoint(image), "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"kopilot {VERSION}"
    ids = run(name, "python3", "-c", "import os; print(os.getuid(), os.getgid())")
    assert ids.stdout.split() == [user, user], ids.stderr


def test_the_charts_run_the_images_the_script_builds() -> None:
    for image, (chart, user) in IMAGES.items():
        values = yaml.safe_load((REPO / "deploy" / "helm" / chart / "values.yaml").read_text())
        assert f"localhost/{values['image']['repository']}:{VERSION}" == image
        pod_security = values.get("podSecurityContext") or {}
        assert str(pod_security.get("runAsUser")) == user


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_serving_image_answers_its_health_checks_and_detects(
    containers: dict[str, str], tmp_path: Path
) -> None:
    model = onnx_models.classic_detector(tmp_path / "model.onnx")
    model.chmod(0o644)
    tmp_path.chmod(0o755)
    image = SERVING
    port = free_port()
    name = containers[image]
    argv = [*BUILDAH, "run", "--isolation", "chroot"]
    argv += ["--volume", f"{tmp_path}:/models:ro", name, "--"]
    argv += [*entrypoint(image), "serve", "--model=/models/model.onnx"]
    argv += ["--host=127.0.0.1", f"--port={port}", "--max-queue-delay-ms=1"]
    server = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        ready = None
        while time.monotonic() < deadline and server.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                ready = httpx.get(f"{base}/readyz", timeout=5)
                if ready.status_code == 200:
                    break
            time.sleep(0.5)
        assert ready is not None and ready.status_code == 200, "server never became ready"
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        detected = httpx.post(
            f"{base}/v1/detect",
            content=SAMPLE.read_bytes(),
            headers={"Content-Type": "image/jpeg"},
            timeout=60,
        )
        assert detected.status_code == 200, detected.text
        assert "detections" in detected.json()
        # What the kubelet does on a pod's deletion: SIGTERM to the container's process (the
        # chroot shares this machine's process table; buildah itself would kill it).
        interpreter = f"/usr/bin/python3 {' '.join(entrypoint(image))} serve"
        (served,) = [p for p in descendants(server.pid) if command_line(p).startswith(interpreter)]
        os.kill(served, signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
        assert server.returncode == 0, output  # in-flight requests finish, then exit 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.communicate()

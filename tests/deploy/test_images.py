"""The two images scripts/build-images.sh builds run their entry points, as the users the charts
expect, and the serving image answers its health checks and a detection from inside the image.

Each image runs with `buildah run` (vfs storage, chroot isolation: the host's network, so the
server listens on 127.0.0.1 only). Without buildah, or with images built from other inputs than
this checkout's, the tests skip locally and fail under CI=true (scripts/setup.d/60-images.sh
builds them).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes import client

from kopilot.kube import controlplane
from tests.deploy import test_chart_policy
from tests.deploy.conftest import missing
from tests.serving import onnx_models

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
BUILDAH = ["buildah", "--storage-driver", "vfs"]
VERSION = yaml.safe_load((REPO / "deploy" / "helm" / "kopilot" / "Chart.yaml").read_text())[
    "appVersion"
]
# image -> (the chart that runs it, the user it runs as)
IMAGES = {
    f"localhost/kopilot-controller:{VERSION}": ("kopilot", "65532"),
    f"localhost/kopilot-serving:{VERSION}": ("model-service", "10001"),
}
SAMPLE = REPO / "tests" / "serving" / "data" / "bus.jpg"


@pytest.fixture(scope="session")
def built() -> None:
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


@pytest.fixture(scope="module")
def containers(built: None) -> Iterator[dict[str, str]]:
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
    image = f"localhost/kopilot-serving:{VERSION}"
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


def test_the_controller_image_runs_a_cycle_against_the_cluster(
    containers: dict[str, str],
    helm: Path,
    control_plane: controlplane.ControlPlane,
    api_client: client.ApiClient,
    tmp_path: Path,
) -> None:
    """The chart's own `kopilot run` arguments, run from the controller image as its user
    against the test control plane (on 127.0.0.1): one acting cycle scales a managed workload."""
    image = f"localhost/kopilot-controller:{VERSION}"
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    ml = f"ml-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ml)))
    try:
        labels = {"app": "detector"}
        apps.create_namespaced_deployment(
            ml,
            client.V1Deployment(
                metadata=client.V1ObjectMeta(
                    name="detector",
                    annotations={
                        "kopilot.io/managed": "true",
                        "kopilot.io/capacity-rps": "10",
                        "kopilot.io/min-replicas": "2",
                    },
                ),
                spec=client.V1DeploymentSpec(
                    replicas=1,
                    selector=client.V1LabelSelector(match_labels=labels),
                    template=client.V1PodTemplateSpec(
                        metadata=client.V1ObjectMeta(labels=labels),
                        spec=client.V1PodSpec(
                            containers=[client.V1Container(name="m", image="registry.invalid/m")]
                        ),
                    ),
                ),
            ),
        )
        docs = test_chart_policy.render(
            helm, "kopilot", [f"namespaces={{{ml}}}", "leaderElection.enabled=false"]
        )
        (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
        (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
        work = tmp_path / "work"
        work.mkdir(mode=0o777)
        work.chmod(0o777)  # the image's user writes the audit log here
        (work / "policy.yaml").write_text(configmap["data"]["policy.yaml"])
        config = yaml.safe_load(control_plane.kubeconfig.read_text())
        for cluster in config["clusters"]:
            ca = Path(cluster["cluster"].pop("certificate-authority")).read_bytes()
            cluster["cluster"]["certificate-authority-data"] = base64.b64encode(ca).decode()
        (work / "kubeconfig").write_text(yaml.safe_dump(config))
        args = [
            a.replace("/etc/kopilot", "/work").replace("/var/lib/kopilot", "/work")
            for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        ]
        args = [a for a in args if not a.startswith("--metrics-port=")]
        argv = [*BUILDAH, "run", "--isolation", "chroot", "--volume", f"{work}:/work"]
        argv += [containers[image], "--", *entrypoint(image), *args]
        argv += ["--metrics-port=-1", "--once", "--no-dry-run", "--kubeconfig=/work/kubeconfig"]
        cycle = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=180)
        output = cycle.stdout + cycle.stderr
        assert cycle.returncode == 0, output
        assert apps.read_namespaced_deployment("detector", ml).spec.replicas == 2, output
        assert (work / "audit.jsonl").stat().st_uid == 65532  # written as the image's user
    finally:
        core.delete_namespace(ml)

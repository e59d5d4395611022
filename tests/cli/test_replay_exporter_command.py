"""`kopilot replay-exporter` as a user runs it: serves on loopback, takes faults, stops on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import pytest

from tests.fixtures import replays

pytestmark = pytest.mark.integration


def test_the_command_serves_metrics_and_faults_then_stops_cleanly_on_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kopilot.cli",
            "replay-exporter",
            "--cluster",
            str(replays.CLUSTER),
            "--port",
            "0",
            "--speed",
            "600",
            "--fault",
            "kind=bad-node,node=gpu-node-1,at=1h",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        assert found, line
        url = f"http://127.0.0.1:{found.group(1)}"
        assert "5 pods" in line and "1 faults" in line
        metrics = httpx.get(f"{url}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert "kube_pod_info{" in metrics.text and "DCGM_FI_DEV_GPU_UTIL{" in metrics.text
        posted = httpx.post(
            f"{url}/faults", json={"kind": "leak", "pod": "ml/ranker-0"}, timeout=10
        )
        assert posted.status_code == 201, posted.text
        listed = httpx.get(f"{url}/faults", timeout=10).json()["faults"]
        assert [f["kind"] for f in listed] == ["bad-node", "leak"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

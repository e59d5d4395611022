"""`kopilot explain` and `kopilot extender` from the command line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from kopilot.cli import app

runner = CliRunner()
POD_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"


def tiny_trace(tmp_path: Path) -> tuple[Path, Path]:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text(
        "sn,cpu_milli,memory_mib,gpu,model\nn0,8000,65536,2,T4\nn1,64000,262144,8,G2\n"
    )
    pods = tmp_path / "pods.csv"
    pods.write_text(
        POD_HEADER
        + "a,4000,1024,1,500,,LS,Running,0,,\n"
        + "b,4000,1024,8,1000,,LS,Running,1,,\n"
        + "c,4000,1024,1,1000,,LS,Running,2,,\n"
        + "d,2000,1024,1,1000,V100M16,LS,Running,3,,\n"
    )
    return nodes, pods


def test_explain_shows_the_chosen_node_and_each_plugin(tmp_path: Path) -> None:
    nodes, pods = tiny_trace(tmp_path)
    result = runner.invoke(
        app, ["explain", "b", "--nodes", str(nodes), "--pods", str(pods), "--node", "n0"]
    )
    assert result.exit_code == 0, result.output
    assert "chose n1" in result.output
    assert "filter GpuFit: FAIL (Insufficient nvidia.com/gpu)" in result.output


def test_explain_says_why_a_pod_is_pending(tmp_path: Path) -> None:
    nodes, pods = tiny_trace(tmp_path)
    result = runner.invoke(app, ["explain", "d", "--nodes", str(nodes), "--pods", str(pods)])
    assert result.exit_code == 0, result.output
    assert "pending" in result.output
    assert "0/2 nodes are available: 2 node(s) didn't have the GPU model (V100M16)" in result.output


def test_explain_rejects_a_bad_trace_with_file_and_line(tmp_path: Path) -> None:
    nodes, pods = tiny_trace(tmp_path)
    pods.write_text(POD_HEADER + "a,4000,1024,2,500,,LS,Running,0,,\n")
    result = runner.invoke(app, ["explain", "a", "--nodes", str(nodes), "--pods", str(pods)])
    assert result.exit_code == 2
    assert "pods.csv:2" in result.output


def test_extender_has_help_and_refuses_an_unknown_profile(tmp_path: Path) -> None:
    result = runner.invoke(app, ["extender", "--help"])
    assert result.exit_code == 0 and "/filter" in result.output
    result = runner.invoke(app, ["extender", "--profile", "nope", "--port", "0"])
    assert result.exit_code == 2
    assert "choose one of" in result.output


def test_extender_starts_with_an_unreadable_node_in_its_node_file(tmp_path: Path) -> None:
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.scheduling.extender_fixtures import v1_node

    bad = v1_node("bad", gpus=4)
    bad["metadata"]["labels"]["nvidia.com/gpu.replicas"] = "4x"
    listing = tmp_path / "nodes.json"
    listing.write_text(json.dumps({"items": [bad, v1_node("good", gpus=2)]}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kopilot.cli",
            "extender",
            "--nodes",
            str(listing),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = None
        for _ in range(300):  # bounded: up to 30 s for the process to listen
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    status = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert status is not None, err
    assert (status["nodes"], status["broken_nodes"]) == (1, 1)
    text = " ".join(err.split())
    assert "node bad: label nvidia.com/gpu.replicas='4x'" in text and "Traceback" not in text

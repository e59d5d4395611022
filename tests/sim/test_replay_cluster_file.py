"""Cluster descriptions for the replay exporter: defaults, and a bad file is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kopilot.cli import app
from kopilot.model import errors
from kopilot.sim import clusterfiles
from tests.fixtures import replays

NODE = '{name: n0, cpu: "8", memory: 32Gi, gpus: 2}'


def _pods(*pods: str) -> str:
    return f"nodes:\n  - {NODE}\npods:\n" + "".join(f"  - {p}\n" for p in pods)


def test_the_test_cluster_and_the_bundled_example_load() -> None:
    c = clusterfiles.load(replays.CLUSTER)
    ranker = c.pod("ml/ranker-0")
    assert ranker is not None
    assert ranker.gpus == (1,)  # the node's next free GPU
    assert ranker.limits["memory"] == 6 * 2**30 and ranker.requests["memory"] == 4 * 2**30
    batch = c.pod("jobs/batch-0")
    assert (
        batch is not None and batch.limits["memory"] == 2**30
    )  # the limit defaults to the request
    assert (batch.owner_kind, batch.service, batch.serving) == ("<none>", "jobs/batch-0", None)
    assert c.services == ("ml/detector", "ml/ranker")
    from kopilot.sim import scenarios

    example = clusterfiles.load(scenarios.locate("replay_cluster.yaml", None))
    assert len(example.pods) == 14 and example.services == ("ml/detector",)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("nodes: [", "not valid YAML"),
        ("nodes: []", "nodes: List should have at least 1 item"),
        (f"nodes:\n  - {NODE}\n  - {NODE}\n", "node names must be unique; repeated: n0"),
        (_pods("{name: p, node: n9, requests: {memory: 1Gi}}"), "'n9' is not one of the file's"),
        (_pods("{name: p, node: n0}"), "give requests.memory or limits.memory"),
        (
            _pods("{name: p, node: n0, requests: {memory: 1Qi}}"),
            "'1Qi' is not a Kubernetes quantity",
        ),
        (_pods("{name: p, node: n0, requests: {memory: 1Gi, disk: 1}}"), "unknown resource"),
        (
            _pods("{name: p, node: n0, requests: {memory: 2Gi}, limits: {memory: 1Gi}}"),
            "limits.memory: below the request",
        ),
        (
            _pods("{name: p, node: n0, requests: {memory: 1Gi, nvidia.com/gpu: 3}}"),
            "asks for 3 GPU(s) but n0 has 2 free",
        ),
        (
            _pods("{name: p, node: n0, requests: {memory: 1Gi}, gpus: [2]}"),
            "distinct indices below 2",
        ),
        (_pods("{name: P_Q, node: n0, requests: {memory: 1Gi}}"), "pods.0.name: String should"),
        (_pods("{name: p, node: n0, requests: {memory: 1Gi}, colour: red}"), "pods.0.colour"),
    ],
)
def test_a_bad_cluster_file_is_one_clear_line(text: str, says: str) -> None:
    with pytest.raises(errors.InvalidInputError) as e:
        clusterfiles.parse(text, source="c.yaml")
    message = str(e.value)
    assert message.startswith("cluster file c.yaml: ") and says in message, message
    assert "\n" not in message


def test_the_command_says_what_is_wrong_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text(_pods("{name: p, node: n9, requests: {memory: 1Gi}}"))
    runner = CliRunner()
    result = runner.invoke(app, ["replay-exporter", "--cluster", str(bad), "--port", "0"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cluster file {bad}: ")
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["replay-exporter", "--fault", "kind=leak", "--port", "0"])
    assert result.exit_code == 2 and "a leak fault names pod" in result.output
    result = runner.invoke(app, ["replay-exporter", "--speed", "86400", "--tick", "1"])
    assert result.exit_code == 2 and "86,400 steps a wall second" in result.output
    assert "replay-exporter" in runner.invoke(app, ["--help"]).output

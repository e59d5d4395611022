"""`kopilot simulate` end to end: tables, report, audit logs, determinism, bad scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kopilot.cli import app

runner = CliRunner()


def _small_scenario(tmp_path: Path) -> Path:
    qps = tmp_path / "qps.csv"
    rows = ["timestamp_anon,value"]
    for i in range(240):  # 4 hours, a spike in the middle
        rows.append(f"{i * 60},{8.0 if 100 <= i < 130 else 1.0}")
    qps.write_text("\n".join(rows) + "\n")
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: small\nseed: 3\nservice:\n  demand_trace: qps.csv\n  capacity_rps: 1.0\n"
        "  max_replicas: 20\ncluster: null\n"
    )
    return path


def test_every_command_has_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "simulate" in result.output
    result = runner.invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0 and "--scenario" in result.output


def test_same_seed_gives_byte_identical_report_and_audit(tmp_path: Path) -> None:
    sc = _small_scenario(tmp_path)
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = runner.invoke(app, ["simulate", "-s", str(sc), "-o", str(out), "-q"])
        assert result.exit_code == 0, result.output
        outs.append(out)
    for f in ("report.html", "audit-hpa.jsonl", "audit-kopilot.jsonl"):
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    assert "<svg" in (outs[0] / "report.html").read_text()
    recs = [json.loads(x) for x in (outs[0] / "audit-kopilot.jsonl").read_text().splitlines()]
    assert recs and all(r["action"]["kind"] == "Scale" and r["action"]["reason"] for r in recs)


def test_a_different_seed_changes_the_cold_starts(tmp_path: Path) -> None:
    sc = _small_scenario(tmp_path)
    for name, seed in (("a", "1"), ("b", "2")):
        assert (
            runner.invoke(
                app, ["simulate", "-s", str(sc), "-o", str(tmp_path / name), "-q", "--seed", seed]
            ).exit_code
            == 0
        )
    assert (tmp_path / "a" / "report.html").read_bytes() != (
        tmp_path / "b" / "report.html"
    ).read_bytes()


def test_bad_scenario_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("service:\n  capacity_rps: zero\n")
    result = runner.invoke(app, ["simulate", "-s", str(path), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "service.capacity_rps" in result.output


@pytest.mark.slow
def test_default_run_covers_the_whole_trace_and_the_cluster(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "-o", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    assert "GPU cluster fill" in result.output and "kopilot" in result.output
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg") == 2

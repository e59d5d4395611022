"""`kopilot advise` against a real Prometheus loaded with real traces (tests/fixtures/prometheus.py)."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner, Result

from kopilot.cli import app
from kopilot.cost import rightsizing
from kopilot.model import gpus
from tests.fixtures import prometheus as fx

pytestmark = pytest.mark.integration


def _args(server: fx.Server, out: pathlib.Path, *extra: str) -> list[str]:
    return [
        "advise",
        "--prometheus-url",
        server.url,
        "--window",
        "48h",
        "--end",
        str(int(server.end)),
        "--out",
        str(out),
        *extra,
    ]


def _advise(server: fx.Server, out: pathlib.Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The real entry point, as a user runs it (a subprocess)."""
    return subprocess.run(
        [sys.executable, "-m", "kopilot.cli", *_args(server, out, *extra)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def _advise_here(server: fx.Server, out: pathlib.Path, *extra: str) -> Result:
    """The same command in this process (typer's CliRunner): faster for the variations."""
    return CliRunner().invoke(app, _args(server, out, *extra), env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def report(
    prometheus_server: fx.Server, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, pathlib.Path, str]:
    out = tmp_path_factory.mktemp("advise")
    run = _advise(prometheus_server, out)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads((out / "advise.json").read_text()), out, run.stdout


def test_hand_computed_pod_costs_to_the_cent(report: tuple[dict, pathlib.Path, str]) -> None:
    """fixed/calc over 48 h: request 1 core (uses 0.5) -> 48 x 0.031611 = 1.517; 1 GiB (uses
    0.5) -> 48 x 0.004237 = 0.2034; 1 GPU -> 48 x 0.95 = 45.60; total 47.32."""
    data, _, _ = report
    calc = next(g for g in data["costs"]["groups"] if g["key"] == "fixed/calc")
    assert round(calc["cpu_cost"], 2) == 1.52
    assert round(calc["ram_cost"], 2) == 0.20
    assert round(calc["gpu_cost"], 2) == 45.60
    assert round(calc["cost"], 2) == 47.32


def test_idle_gpus_found_with_both_hostname_spellings(
    report: tuple[dict, pathlib.Path, str],
) -> None:
    data, _, stdout = report
    idle = {g["pod"]: g for g in data["idle_gpus"]}
    # the quiet Alibaba pod (label `hostname`) and the constant 0 % pod are idle and priced
    assert idle["sd-8b7c6d5e4-ccccc"]["node"] == "gpu-node-b"
    assert idle["sd-8b7c6d5e4-ccccc"]["idle_hours"] > 20
    assert idle["calc"]["cost"] == pytest.approx(48 * 0.95, abs=0.05)
    # the busy ones (label `Hostname`) were read too, and are not idle the whole time
    assert idle.get("sd-8b7c6d5e4-aaaaa", {"idle_hours": 0})["idle_hours"] < 10
    assert "GPUs allocated but idle" in stdout


def test_rightsizing_side_by_side_and_honest_gaps(report: tuple[dict, pathlib.Path, str]) -> None:
    data, _, _ = report
    rows = {f"{r['namespace']}/{r['workload']}/{r['container']}": r for r in data["rightsizing"]}
    web = rows["shop/web/app"]
    assert web["pods"] == 2
    assert set(web["recommendations"]) == {"krr-simple", "vpa", "kopilot"}
    for rec in web["recommendations"].values():
        assert 0.05 < rec["cpu"] < 2.0  # below the 2-core request: oversized
    sd = rows["genai/sd/worker"]
    assert sd["gpu_model"] == "A100-80GB"
    # up to 15 GiB of framebuffer + 15 %; the MIG fit holds both the share and the memory
    kop = sd["recommendations"]["kopilot"]
    assert 15 * 1024**3 < kop["gpu_memory"] < 18 * 1024**3
    profile = gpus.A100_80GB.profile(sd["mig_fit"])
    assert profile.compute / 7 >= kop["gpu"] and profile.memory_gb * 1e9 >= kop["gpu_memory"]
    assert sd["mig_fit"] == rightsizing.fit_mig(
        "A100-80GB", gpu_share=kop["gpu"], gpu_memory_bytes=kop["gpu_memory"]
    )
    thin = rows["shop/thin/app"]
    assert thin["recommendations"] == {}
    assert any("too little history" in m for m in thin["messages"])
    assert any(z["workload"] == "idle/batch" for z in data["scale_to_zero"])
    assert any("NaN/Inf" in p for p in data["problems"])
    assert any(r["subject"] == "workload/shop/web" for r in data["recommend"])


def test_writes_csv_and_self_contained_html(report: tuple[dict, pathlib.Path, str]) -> None:
    _, out, _ = report
    csv_text = (out / "advise.csv").read_text()
    assert csv_text.splitlines()[0].startswith("namespace,workload,container")
    assert "shop,web,app" in csv_text
    page = (out / "advise.html").read_text()
    assert page.count("<svg") >= 2
    assert 'src="http' not in page and "<script" not in page


def test_namespace_selector_and_fail_above(
    prometheus_server: fx.Server, tmp_path: pathlib.Path
) -> None:
    run = _advise_here(
        prometheus_server,
        tmp_path,
        "--namespace",
        "shop",
        "--selector",
        "app=web",
        "--fail-above",
        "0.5",
    )
    assert run.exit_code == 1, run.output  # shop/web wastes most of its 2 cores
    data = json.loads((tmp_path / "advise.json").read_text())
    assert {g["key"] for g in data["costs"]["groups"]} == {"shop/web"}
    ok = _advise_here(prometheus_server, tmp_path, "--namespace", "shop", "--fail-above", "0.99")
    assert ok.exit_code == 0, ok.output


def test_unreachable_prometheus_exits_3_with_a_message(tmp_path: pathlib.Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = fx.Server(url=f"http://127.0.0.1:{port}", start=0, end=3600 * 48)
    run = _advise_here(server, tmp_path)
    assert run.exit_code == 3
    assert "unreachable" in run.output


def test_bad_price_book_exits_2_naming_the_field(
    prometheus_server: fx.Server, tmp_path: pathlib.Path
) -> None:
    book = tmp_path / "prices.yaml"
    book.write_text("gpu_hour: -3\n")
    run = _advise_here(prometheus_server, tmp_path, "--prices", str(book))
    assert run.exit_code == 2
    assert "gpu_hour" in run.output


def test_the_live_loop_writes_the_same_report(
    prometheus_server: fx.Server,
    report: tuple[dict, pathlib.Path, str],
    tmp_path: pathlib.Path,
) -> None:
    """`kopilot run --advise-dir` writes what `kopilot advise` writes for the same window, and a
    Prometheus that is gone is a line to show, not a fault of the loop."""
    from kopilot.metrics import prometheus
    from kopilot.report import advice

    data, _, _ = report
    with prometheus.Client(prometheus_server.url) as client:
        live = advice.LiveAdvice(client=client, out=tmp_path, every_s=3600, window_s=48 * 3600)
        assert live.due(prometheus_server.end)
        line = live.write(prometheus_server.end)
        assert "advise report written" in line, line
        assert not live.due(prometheus_server.end + 60)
    written = json.loads((tmp_path / "advise.json").read_text())
    for key in ("totals", "costs", "idle_gpus", "scale_to_zero", "rightsizing", "recommend"):
        assert written[key] == data[key], key
    assert (tmp_path / "advise.html").stat().st_size > 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with prometheus.Client(f"http://127.0.0.1:{port}", timeout=2.0) as gone:
        down = advice.LiveAdvice(client=gone, out=tmp_path / "x", every_s=60, window_s=7200)
        assert "advise report not written" in down.write(prometheus_server.end)

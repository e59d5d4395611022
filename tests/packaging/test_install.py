"""What a user gets from `pip install kopilot`: every command answers, or names the extra it needs.

Builds the sdist and, from it, the wheel (`python -m build`, as a release would), installs the
wheel with its base dependencies only into a fresh venv (no system site packages, no extras; pip
reads PyPI through its cache), then runs `kopilot --version`, every command's `--help`, and a
small real run of each command that needs no cluster. The commands whose extra is not installed
must say which one in one line. Slow (about two minutes here): it builds and installs for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kopilot.cli import app

REPO = Path(__file__).resolve().parents[2]
COMMANDS = sorted(
    c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
)
# Commands that need an extra the base install does not have, and that extra.
NEEDS_EXTRA = {"run": "kube", "scaler": "scaler", "serve": "serve"}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=600, **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin/ folder of a fresh venv holding only the wheel and its base dependencies."""
    root = tmp_path_factory.mktemp("install")
    built = _run([sys.executable, "-m", "build", "--outdir", str(root / "dist"), str(REPO)])
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheels = sorted((root / "dist").glob("kopilot-*.whl"))
    sdists = sorted((root / "dist").glob("kopilot-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    venv = root / "venv"
    # No pip inside: the test's own pip installs into it (`--python`), which saves ensurepip.
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    pip = _run(
        [
            sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
            "--quiet", "--disable-pip-version-check", str(wheels[0]),
        ]
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-2000:]
    yield venv / "bin"


def _kopilot(
    bin_dir: Path, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return _run([str(bin_dir / "kopilot"), *args], cwd=cwd, env=env)


def test_the_wheel_is_a_base_install_without_the_extras(installed: Path) -> None:
    probe = _run(
        [
            str(installed / "python"),
            "-c",
            "import importlib.util as u, kopilot;"
            "print(kopilot.__file__);"
            "print([m for m in ('kubernetes', 'grpc', 'onnxruntime') if u.find_spec(m)])",
        ]
    )
    where, extras = probe.stdout.splitlines()
    assert str(REPO) not in where  # the installed copy, not the source tree
    assert extras == "[]"


def test_version_and_every_commands_help(installed: Path) -> None:
    version = _kopilot(installed, "--version")
    assert version.returncode == 0 and version.stdout.strip() == "kopilot 0.1.0"
    listed = _kopilot(installed, "--help")
    assert listed.returncode == 0
    for command in COMMANDS:
        assert command in listed.stdout
        helped = _kopilot(installed, command, "--help")
        assert helped.returncode == 0, f"{command}: {helped.stderr}"
        assert "Traceback" not in helped.stdout + helped.stderr


@pytest.mark.parametrize("command", sorted(NEEDS_EXTRA))
def test_a_command_without_its_extra_names_it_in_one_line(
    installed: Path, command: str, tmp_path: Path
) -> None:
    args = {
        "run": ["--kubeconfig", str(tmp_path / "kubeconfig"), "--once"],
        "scaler": ["--demand-dir", str(tmp_path), "--port", "0"],
        "serve": ["--model", str(REPO / "pyproject.toml"), "--port", "0"],
    }[command]
    done = _kopilot(installed, command, *args)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: kopilot {command} needs {done.stderr.split(' needs ')[1].split(',')[0]}, "
        f"which comes with the {NEEDS_EXTRA[command]!r} extra: "
        f"pip install 'kopilot[{NEEDS_EXTRA[command]}]'"
    ]


def test_smoke_runs_of_the_commands_that_need_no_cluster(installed: Path, tmp_path: Path) -> None:
    qps = tmp_path / "qps.csv"
    qps.write_text(
        "timestamp_anon,value\n"
        + "".join(f"{i * 60},{4.0 if 60 <= i < 90 else 1.0}\n" for i in range(180))
    )
    scenario = tmp_path / "small.yaml"
    scenario.write_text(
        "name: small\nseed: 3\nservice:\n  demand_trace: qps.csv\n  capacity_rps: 1.0\n"
        "  max_replicas: 10\ncluster: null\n"
    )
    out = tmp_path / "report"
    sim = _kopilot(installed, "simulate", "-q", "--scenario", str(scenario), "--out", str(out))
    assert sim.returncode == 0, sim.stderr
    assert (out / "report.html").stat().st_size > 1000
    logs = sorted(out.glob("audit-*.jsonl"))
    assert logs

    audited = _kopilot(installed, "audit", "--log", str(logs[0]), "--json", "--limit", "3")
    assert audited.returncode == 0, audited.stderr
    assert all("outcome" in json.loads(line) for line in audited.stdout.splitlines())

    explained = _kopilot(installed, "explain", "openb-pod-0001")  # the bundled openb pod list
    assert explained.returncode == 0, explained.stderr
    assert "openb-pod-0001" in explained.stdout

    policy = tmp_path / "policy.yaml"
    policy.write_text("dry_run: true\nmax_cordoned_nodes: 1\n")
    checked = _kopilot(installed, "policy", str(policy))
    assert checked.returncode == 0 and "valid" in checked.stdout, checked.stderr

    queue = tmp_path / "approvals.jsonl"
    listed = _kopilot(installed, "approve", "--queue", str(queue))
    assert listed.returncode == 0, listed.stderr

    advised = _kopilot(installed, "advise", "--prometheus-url", "http://127.0.0.1:1")
    assert advised.returncode == 3  # Prometheus unreachable: the documented exit code
    assert len(advised.stderr.strip().splitlines()) == 1


def test_the_extender_serves_from_the_base_install(installed: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    process = subprocess.Popen(
        [str(installed / "kopilot"), "extender", "--host", "127.0.0.1", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        line = ""
        while "http://127.0.0.1:" not in line and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                break
        assert "http://127.0.0.1:" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split(":")[0].split()[0])
        status = None
        while status is None and time.monotonic() < deadline:  # it listens just after saying so
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
                    status = r.status
            except urllib.error.URLError:
                time.sleep(0.2)
        assert status == 200
    finally:
        process.terminate()
        process.wait(timeout=30)

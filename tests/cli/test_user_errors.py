"""Every command answers a user's mistake with one line and the right exit code, never a traceback.

The sweep runs the real entry point (`kopilot.cli.main`, what the `kopilot` script calls) with bad
paths, ports, URLs, numbers and files for each command `kopilot --help` lists. An exception
escaping `main` is a traceback a user would see: the test fails on it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kopilot.cli import app, main

COMMANDS = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}

MISSING = "/nonexistent/kopilot-test/file"


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.bin"
    path.write_bytes(b"\x00\xff{[: not, what anyone expects\n\x89PNG")
    return path


def _folder(tmp_path: Path) -> str:
    return str(tmp_path)


# (command, arguments; "{garbage}" and "{dir}" are filled in per test), expected exit code.
CASES: list[tuple[list[str], int]] = [
    (["nope"], 2),
    (["simulate", "--out", "/proc/kopilot-x"], 2),
    (["simulate", "--scenario", MISSING], 2),
    (["simulate", "--scenario", "{garbage}"], 2),
    (["simulate", "--scenario", "{dir}"], 2),
    (["simulate", "--seed", "many"], 2),
    (["explain", "no-such-pod"], 2),
    (["explain", "x", "--nodes", MISSING], 2),
    (["explain", "x", "--pods", "{garbage}"], 2),
    (["explain", "x", "--profile", "nope"], 2),
    (["explain", "x", "--top", "-3"], 2),
    (["extender", "--port", "99999"], 2),
    (["extender", "--port", "-1"], 2),
    (["extender", "--port", "http"], 2),
    (["extender", "--nodes", MISSING], 2),
    (["extender", "--nodes", "{garbage}"], 2),
    (["extender", "--workload", "{garbage}"], 2),
    (["extender", "--profile", "nope"], 2),
    (["extender", "--kubeconfig", MISSING], 2),
    (["extender", "--kubeconfig", "{garbage}"], 2),
    (["approve", "no-such-request", "--queue", "{garbage}"], 2),
    (["approve", "--queue", "{dir}"], 2),
    (["audit", "--log", MISSING], 2),
    (["audit", "--log", "{garbage}"], 2),
    (["audit", "--limit", "-1"], 2),
    (["policy", MISSING], 2),
    (["policy", "{garbage}"], 2),
    (["run", "--prometheus-url", "not-a-url"], 2),
    (["run", "--prometheus-url", "http://127.0.0.1:99999"], 2),
    (["run", "--metrics-port", "99999"], 2),
    (["run", "--kubeconfig", MISSING], 2),
    (["run", "--kubeconfig", "{garbage}"], 2),
    (["run", "--policy", "{garbage}"], 2),
    (["run", "--interval", "0"], 2),
    (["run", "--prices", "{garbage}", "--kubeconfig", MISSING], 2),
    (["run", "--prometheus-timeout", "0"], 2),
    (["replay-exporter", "--cluster", MISSING], 2),
    (["replay-exporter", "--cluster", "{garbage}"], 2),
    (["replay-exporter", "--cluster", "{dir}"], 2),
    (["replay-exporter", "--port", "99999"], 2),
    (["replay-exporter", "--speed", "0"], 2),
    (["replay-exporter", "--start", "soon", "--port", "0"], 2),
    (["replay-exporter", "--fault", "kind=meteor", "--port", "0"], 2),
    (["replay-exporter", "--scenario", "{garbage}", "--port", "0"], 2),
    (["replay-exporter", "--kubeconfig", "{garbage}", "--port", "0"], 2),
    (["scaler", "--port", "99999"], 2),
    (["scaler", "--demand-dir", MISSING], 2),
    (["scaler", "--quantile", "2"], 2),
    (["serve", "--model", MISSING], 2),
    (["serve", "--model", "{garbage}", "--port", "0"], 2),
    (["serve", "--model", "{garbage}", "--port", "99999"], 2),
    (["serve", "--model", "{garbage}", "--port", "0", "--max-batch-size", "0"], 2),
    (["advise", "--prometheus-url", "not-a-url"], 2),
    (["advise", "--prometheus-url", "ftp://prometheus:9090"], 2),
    (["advise", "--prometheus-url", "http://127.0.0.1:1", "--window", "1h"], 3),
    (["advise", "--prometheus-url", "http://127.0.0.1:1", "--window", "soon"], 2),
    (["advise", "--prometheus-url", "http://127.0.0.1:1", "--prices", MISSING], 2),
    (["advise", "--prometheus-url", "http://127.0.0.1:1", "--prices", "{garbage}"], 2),
    (["advise", "--prometheus-url", "http://127.0.0.1:1", "--end", "yesterday"], 2),
]


def test_the_sweep_covers_every_command() -> None:
    swept = {args[0] for args, _ in CASES}
    assert swept >= COMMANDS, f"no bad-input case for {sorted(COMMANDS - swept)}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("args", "code"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_a_mistake_is_one_line_and_an_exit_code(
    args: list[str], code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filled = [
        a.replace("{garbage}", str(_garbage(tmp_path))).replace("{dir}", _folder(tmp_path))
        for a in args
    ]
    with pytest.raises(SystemExit) as exited:
        main(filled)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert exited.value.code == code, out + err
    # `kopilot serve` logs JSON records on stderr from its start; they are its log, not the error.
    # `note: ` lines (one each) say what was read around the mistake (a torn record set aside).
    lines = [
        line
        for line in err.splitlines()
        if line.strip() and not line.startswith(('{"ts"', "note: "))
    ]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("error: ")


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--out", "/proc/kopilot-x"],
        ["extender", "--port", "99999"],
        ["advise", "--prometheus-url", "not-a-url"],
    ],
)
def test_the_installed_entry_point_prints_no_traceback(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kopilot.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr

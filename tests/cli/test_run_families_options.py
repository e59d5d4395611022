"""`kopilot run`'s options for the live families fail as one clear line before any cluster is
contacted: a bad price book, an advise report without a Prometheus to read it from."""

from __future__ import annotations

from pathlib import Path

from tests.kube.live import kopilot_run


def test_a_bad_price_book_is_one_clear_line(tmp_path: Path) -> None:
    book = tmp_path / "prices.yaml"
    book.write_text("gpu_hour: -3\n")
    result = kopilot_run(tmp_path / "no-such-kubeconfig", "--prices", str(book))
    assert result.returncode == 2, result.stderr
    assert "gpu_hour" in result.stderr and "Traceback" not in result.stderr


def test_an_advise_report_needs_a_prometheus(tmp_path: Path) -> None:
    result = kopilot_run(tmp_path / "no-such-kubeconfig", "--advise-dir", str(tmp_path / "a"))
    assert result.returncode == 2
    assert "--advise-dir needs --prometheus-url" in result.stderr

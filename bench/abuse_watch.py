"""What the abuse benchmarks watch while a scenario runs against a server process: its peak
resident memory (VmRSS from /proc/<pid>/status, every 20 ms) and whether its health probe kept
answering within a second (polled every 100 ms from a thread of its own).

`Watch(pid, probe)` is a context manager; `probe()` returns True when the server answered
healthy within its own 1 s timeout. Used by bench/abuse_extender.py and bench/abuse_scaler.py.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

CHART_LIMIT_MIB = 1024
"""deploy/helm/kopilot/values.yaml: resources.limits.memory 1Gi."""


def rss_mib(pid: int) -> float:
    """The process's resident memory now, in MiB (0 when it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return 0.0
    return 0.0


@dataclass
class Watch:
    pid: int
    probe: Callable[[], bool]
    peak_mib: float = 0.0
    probes: int = 0
    missed: int = 0
    slowest_s: float = 0.0
    codes: Counter[str] = field(default_factory=Counter)
    """What the scenario's clients got (status codes), filled in by the scenario."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Watch:
        self.peak_mib = rss_mib(self.pid)
        self._threads = [
            threading.Thread(target=self._sample, daemon=True),
            threading.Thread(target=self._poll, daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mib = max(self.peak_mib, rss_mib(self.pid))

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            started = time.perf_counter()
            try:
                ok = self.probe()
            except Exception:  # a refused or timed-out probe is a missed probe
                ok = False
            took = time.perf_counter() - started
            self.probes += 1
            self.slowest_s = max(self.slowest_s, took)
            if not ok or took > 1.0:
                self.missed += 1

    def row(self, name: str, seconds: float) -> str:
        codes = " ".join(f"{k}:{v}" for k, v in sorted(self.codes.items())) or "-"
        probe = "yes" if self.missed == 0 else f"NO ({self.missed}/{self.probes} missed)"
        return (
            f"{name:<28} {seconds:6.1f} {self.peak_mib:8.0f} "
            f"{'ok' if self.peak_mib < CHART_LIMIT_MIB else 'OVER':>5} "
            f"{probe:>10} {self.slowest_s * 1000:7.0f}  {codes}"
        )


HEADER = (
    f"{'scenario':<28} {'secs':>6} {'peakMiB':>8} {'<1Gi':>5} {'probe<1s':>10} {'maxms':>7}"
    "  client status codes"
)

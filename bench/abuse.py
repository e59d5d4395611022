"""Shared pieces of the abuse benchmarks (bench/abuse_serve.py, bench/abuse_extender.py,
bench/abuse_scaler.py): a server child process on 127.0.0.1, its peak RSS sampled from /proc
(every 20 ms), probes polled with the kubelet's 1 s timeout, and the printed result per scenario
(a block with `render`, or a table row with `table_header` / `table_row`).

    with abuse.Watch(pid, {"/healthz": abuse.http_probe(url + "/healthz")}) as watch:
        ...  # run the scenario (bounded in count and time)
    print(abuse.render(abuse.Outcome(name="burst", watch=watch.result(), abusive=..., good=...,
                                     memory_limit=abuse.MODEL_SERVICE_MEMORY_LIMIT)))

A probe is any callable taking a timeout in seconds and returning a status (an int, e.g. the HTTP
status or a gRPC health code mapped to 200) or None when it got no answer in time (a probe that
raises counts as None); `http_probe` and `tcp_probe` are provided. The memory limit a server's
peak is held to is a parameter: each bench passes its server's. Nothing here talks to anything
but 127.0.0.1.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence

import httpx

Probe = Callable[[float], int | None]
KUBELET_TIMEOUT_S = 1.0
MODEL_SERVICE_MEMORY_LIMIT = 2 * 1024**3  # deploy/helm/model-service: resources.limits.memory
CONTROLLER_MEMORY_LIMIT = 1 * 1024**3  # deploy/helm/kopilot (the controller): the same
# The extender runs in the kopilot-controller image from deploy/kube-scheduler/kopilot-scheduler.yaml
# (a plain manifest with a 512Mi request and no limit) and no manifest deploys the scaler: neither
# has a chart limit, so their benches hold them to the controller chart's.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname
    if host != "127.0.0.1":
        raise SystemExit(f"{url}: the abuse benchmarks only talk to 127.0.0.1")
    return url


def scaled(count: int, quick: bool) -> int:
    """`count`, or a tenth of it (at least 1) for a bench's --quick run."""
    return max(1, count // 10) if quick else count


def rss_bytes(pid: int) -> int:
    """The resident set of `pid` now (VmRSS in /proc/<pid>/status), 0 once it has exited."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used (from /proc/<pid>/stat), 0 once it has exited."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_probe(url: str) -> Probe:
    """GET `url` on a fresh connection with `Connection: close`, as the kubelet's httpGet probe
    does; the status, or None when the status line did not arrive within the timeout. A bare
    socket, so the probe's own cost (no client, no TLS context) stays out of the figure."""
    parts = urllib.parse.urlsplit(loopback(url))
    port = parts.port or 80
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        "user-agent: kube-probe/1.34\r\nconnection: close\r\n\r\n"
    ).encode()

    def probe(timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
                sock.sendall(request)
                data = b""
                while b"\r\n" not in data:
                    sock.settimeout(max(0.001, deadline - time.monotonic()))
                    chunk = sock.recv(4096)
                    if not chunk:
                        return None
                    data += chunk
                return int(data.split(b" ", 2)[1])
        except (OSError, ValueError, IndexError):
            return None

    return probe


def tcp_probe(host: str, port: int) -> Probe:
    """A TCP connect (the kubelet's tcpSocket probe): 200 when it connects in time."""
    if host != "127.0.0.1":
        raise SystemExit("the abuse benchmarks only talk to 127.0.0.1")

    def probe(timeout: float) -> int | None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return 200
        except OSError:
            return None

    return probe


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ProbeRecord:
    """One probe's record over a scenario."""

    polls: int
    answered: int  # 200 within the kubelet's timeout
    worst_s: float  # slowest answer (the timeout when one got none)
    statuses: dict[str, int]
    missed_at: tuple[float, ...] = ()  # seconds into the scenario of each poll that missed

    @property
    def held(self) -> bool:
        return self.polls > 0 and self.answered == self.polls


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WatchResult:
    rss_before: int
    rss_peak: int
    rss_after: int
    probes: dict[str, ProbeRecord]
    seconds: float
    cpu_s: float  # the server's CPU time during the scenario


class Watch:
    """While the `with` block runs: the peak RSS of `pid` (sampled every `rss_every_s`) and each
    probe polled every `probe_every_s` with the kubelet's 1 s timeout, on threads of their own."""

    def __init__(
        self,
        pid: int,
        probes: dict[str, Probe],
        *,
        rss_every_s: float = 0.02,
        probe_every_s: float = 0.25,
        timeout_s: float = KUBELET_TIMEOUT_S,
    ) -> None:
        self._pid = pid
        self._probes = probes
        self._rss_every, self._probe_every, self._timeout = rss_every_s, probe_every_s, timeout_s
        self._stop = threading.Event()
        self._peak = 0
        self._before = self._after = 0
        self._records: dict[str, list[tuple[int | None, float, float]]] = {k: [] for k in probes}
        self._threads: list[threading.Thread] = []
        self._started = self._ended = 0.0
        self._cpu = 0.0

    def __enter__(self) -> Watch:
        self._before = self._peak = rss_bytes(self._pid)
        self._cpu = cpu_seconds(self._pid)
        self._started = time.monotonic()
        self._threads = [threading.Thread(target=self._sample_rss, daemon=True)]
        self._threads += [
            threading.Thread(target=self._poll, args=(name,), daemon=True) for name in self._probes
        ]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._ended = time.monotonic()  # the with block's duration, not the joins'
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self._after = rss_bytes(self._pid)
        self._cpu = cpu_seconds(self._pid) - self._cpu

    def _sample_rss(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_bytes(self._pid))
            self._stop.wait(self._rss_every)

    def _poll(self, name: str) -> None:
        probe = self._probes[name]
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status = probe(self._timeout)
            except Exception:  # a refused or failed probe is a missed one
                status = None
            elapsed = time.monotonic() - started
            self._records[name].append((status, elapsed, started - self._started))
            self._stop.wait(max(0.0, self._probe_every - elapsed))

    def result(self) -> WatchResult:
        probes = {}
        for name, records in self._records.items():
            ok = [e for s, e, _ in records if s == 200 and e <= self._timeout]
            statuses = collections.Counter(
                str(s) if s is not None else "none" for s, _, _ in records
            )
            probes[name] = ProbeRecord(
                polls=len(records),
                answered=len(ok),
                worst_s=max((e for _, e, _ in records), default=0.0),
                statuses=dict(statuses),
                missed_at=tuple(
                    round(at, 2) for s, e, at in records if s != 200 or e > self._timeout
                ),
            )
        return WatchResult(
            rss_before=self._before,
            rss_peak=self._peak,
            rss_after=self._after,
            probes=probes,
            seconds=self._ended - self._started,
            cpu_s=self._cpu,
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One scenario against one server: what the watch saw and what each kind of client got."""

    name: str
    server: str
    watch: WatchResult
    abusive: dict[str, int]  # status (or "closed", "timeout", ...) -> count
    good: dict[str, int]
    memory_limit: int  # the server's chart limit, in bytes
    note: str = ""

    def verdict(self) -> list[str]:
        """What missed the goal: peak under the limit, probes always answered, no 5xx."""
        missed = []
        if self.watch.rss_peak >= self.memory_limit:
            missed.append(f"peak RSS over {_gib(self.memory_limit)} GiB")
        missed += [f"{p} missed" for p, r in self.watch.probes.items() if not r.held]
        fives = sum(n for s, n in self.abusive.items() if s.startswith("5")) + sum(
            n for s, n in self.good.items() if s.startswith("5")
        )
        if fives:
            missed.append(f"{fives} 5xx")
        return missed


def _gib(size: int) -> str:
    return f"{size / 2**30:.0f}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "-"


def render(outcome: Outcome) -> str:
    w = outcome.watch
    mib = 2**20
    lines = [
        f"{outcome.name} [{outcome.server}] ({w.seconds:.1f} s, server CPU {w.cpu_s:.1f} s)"
        + (f" - {outcome.note}" if outcome.note else ""),
        f"  RSS: {w.rss_before / mib:.0f} MiB before, peak {w.rss_peak / mib:.0f} MiB, "
        f"{w.rss_after / mib:.0f} MiB after",
    ]
    for name, r in w.probes.items():
        lines.append(
            f"  {name}: {r.answered}/{r.polls} answered 200 within {KUBELET_TIMEOUT_S:g} s "
            f"(worst {r.worst_s:.2f} s; {_counts(r.statuses)}) -> {'held' if r.held else 'MISSED'}"
            + (f" at {', '.join(f'{t:g}' for t in r.missed_at[:8])} s" if r.missed_at else "")
        )
    lines.append(f"  abusive clients got: {_counts(outcome.abusive)}")
    lines.append(f"  well-behaved clients got: {_counts(outcome.good)}")
    missed = outcome.verdict()
    lines.append("  goal: " + ("met" if not missed else "NOT met (" + "; ".join(missed) + ")"))
    return "\n".join(lines)


def table_header(memory_limit: int) -> str:
    """The header of `table_row`'s table."""
    return (
        f"{'scenario':<28} {'secs':>6} {'peakMiB':>8} {'<' + _gib(memory_limit) + 'Gi':>5} "
        f"{'probe<1s':>10} {'maxms':>7}  client status codes"
    )


def table_row(
    name: str, w: WatchResult, codes: dict[str, int], *, memory_limit: int, alive: bool = True
) -> str:
    """One scenario as a row: its duration, peak RSS (and whether it stayed under
    `memory_limit`), whether every probe answered 200 within the kubelet's timeout, the slowest
    probe, and the status codes the scenario's clients got."""
    polls = sum(r.polls for r in w.probes.values())
    missed = polls - sum(r.answered for r in w.probes.values())
    worst = max((r.worst_s for r in w.probes.values()), default=0.0)
    probe = "yes" if missed == 0 else f"NO ({missed}/{polls} missed)"
    peak = w.rss_peak / 2**20
    shown = " ".join(f"{k}:{v}" for k, v in sorted(codes.items())) or "-"
    return (
        f"{name:<28} {w.seconds:6.1f} {peak:8.0f} "
        f"{'ok' if w.rss_peak < memory_limit else 'OVER':>5} "
        f"{probe:>10} {worst * 1000:7.0f}  {shown}" + ("" if alive else "  SERVER DIED")
    )


class ChildServer:
    """A server command as a child process on 127.0.0.1; SIGTERM (then SIGKILL) on exit."""

    def __init__(
        self, command: Sequence[str], *, log: pathlib.Path, env: dict[str, str] | None = None
    ) -> None:
        self.command = list(command)
        self.log = log
        self._env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> ChildServer:
        out = self.log.open("wb")
        self.process = subprocess.Popen(
            self.command, stdout=out, stderr=subprocess.STDOUT, env=self._env
        )
        out.close()
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_http(self, url: str, *, timeout_s: float = 120.0) -> None:
        """Until `url` answers 200 (or the child exits, or `timeout_s` passes)."""
        loopback(url)

        def get(timeout: float) -> int | None:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(url, timeout=timeout).status_code
            return None

        self.wait_until(get, what=url, timeout_s=timeout_s)

    def wait_until(self, probe: Probe, *, what: str, timeout_s: float = 120.0) -> None:
        """Until `probe` answers 200 (or the child exits, or `timeout_s` passes)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SystemExit(f"{self.command[:4]} exited: see {self.log}")
            if probe(2.0) == 200:
                return
            time.sleep(0.2)
        raise SystemExit(f"{what} not answering after {timeout_s:g} s: see {self.log}")


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


@contextlib.contextmanager
def threads(targets: Sequence[Callable[[], None]]) -> Iterator[None]:
    """Run each target on a thread for the `with` block; joined (bounded) at its end."""
    started = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in started:
        t.start()
    try:
        yield
    finally:
        for t in started:
            t.join(timeout=60)


def clients(count: int, client: Callable[[int], None], timeout_s: float) -> None:
    """Run `client(0)` ... `client(count - 1)` on threads at once; join each for `timeout_s`."""
    started = [threading.Thread(target=client, args=(k,)) for k in range(count)]
    for t in started:
        t.start()
    for t in started:
        t.join(timeout=timeout_s)

"""The fault scenario, live: control plane, replay exporter, real Prometheus, `kopilot run`.

Starts the test control plane (etcd, kube-apiserver, scheduler, controller-manager, kwok) with
four kwok GPU nodes (4 A100s each) and a 6-replica GPU Deployment `ml/detector`; the replay
exporter (`kopilot replay-exporter --kubeconfig`) serves those nodes and pods as
kube-state-metrics, cAdvisor, dcgm-exporter and serving series on an accelerated clock; a real
Prometheus scrapes it every second; `kopilot run` reads it (docs/signals.md) every 2 s. A normal
stretch, then each fault in turn (a leak, an XID storm, a node going bad, a latency regression),
injected through the exporter's POST /faults. All of it twice: observe-only (dry-run) and
remediating (acting; the bench answers each approval request as a person would, with `kopilot
approve`, and records how long it waited). Per fault it prints when it was injected, when health
proposed the remedy (time to detect, in trace and wall time), the action, the governor's verdict,
and what remediating saved against observe-only over the same fault window; and the remediations
over the normal stretch (false remediations; goal 0).

    python bench/live_faults.py [--speed 60] [--seed 0] [--quick]

Health's time thresholds are wall seconds while the replay runs `--speed` times faster, so the
policy file scales the leak horizon to two trace hours (7200 / speed wall seconds).
Needs the control-plane binaries (`bash scripts/setup.d/50-controlplane.sh`) and `prometheus`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kubernetes import config

from kopilot.kits import clocks
from kopilot.kube import apis, controlplane, retrying

REPO = Path(__file__).resolve().parents[1]
NS = "ml"
APP = "detector"
NODES = [f"gpu-node-{i}" for i in range(4)]
REMEDIES = frozenset({"Restart", "Cordon", "Scale", "Recommend"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    speed: float
    normal_s: float
    windows: dict[str, float]
    """Each fault's window (wall s), in order: it is active this long, then its cost is read."""
    history_s: float
    """`kopilot run --signals-history`: the leak fit spans it, the level-shift rule needs 60
    points (120 s at the 2 s step) of it."""
    leak_mib_per_min: float

    @property
    def faults(self) -> tuple[str, ...]:
        return tuple(self.windows)


@dataclass(slots=True, kw_only=True)
class Outcome:
    """One fault in one mode: what health proposed about it and what it cost."""

    fault: str
    target: str
    injected_wall: float
    injected_trace: float
    detected_wall: float | None = None
    action: str = "-"
    verdict: str = "-"
    approval_wait_s: float | None = None
    applied_wall: float | None = None
    cost: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class RunResult:
    mode: str
    normal_remedies: list[str]
    normal_alerts: int
    outcomes: list[Outcome]


STOPPING = threading.Event()
"""Set on Ctrl-C: both runs stop waiting, and every process they started is stopped."""


def pause(seconds: float) -> None:
    if STOPPING.wait(seconds):
        raise SystemExit("interrupted")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, probe: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError):
            value = probe()
            if value:
                return value
        time.sleep(0.3)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


# --- the cluster -----------------------------------------------------------------------------


def make_cluster(api: apis.Api) -> dict[str, str]:
    """Four GPU nodes and the detector Deployment; returns pod -> node once all run."""
    capacity = {"cpu": "64", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4"}
    for name in NODES:
        api.post(
            "/api/v1/nodes",
            {
                "metadata": {
                    "name": name,
                    "labels": {"type": "kwok", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                },
                "status": {"capacity": capacity, "allocatable": capacity},
            },
            "create node",
        )
    wait_until("the kwok nodes Ready", lambda: all(ready(api, n) for n in NODES), 60)
    api.post("/api/v1/namespaces", {"metadata": {"name": NS}}, "create namespace")
    resources = {
        "requests": {"cpu": "4", "memory": "6Gi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "8Gi", "nvidia.com/gpu": "1"},
    }
    spec = {
        "containers": [
            {"name": "server", "image": "registry.invalid/detector:1", "resources": resources}
        ],
        # No toleration of every taint (unlike tests/kube's pods): a cordoned node gets no
        # replacement.
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": APP}},
            }
        ],
    }
    body = {
        "metadata": {"name": APP, "namespace": NS},
        "spec": {
            "replicas": 6,
            "selector": {"matchLabels": {"app": APP}},
            "template": {"metadata": {"labels": {"app": APP}}, "spec": spec},
        },
    }
    api.post(f"/apis/apps/v1/namespaces/{NS}/deployments", body, "create deployment")
    return wait_until(
        "6 detector pods Running",
        lambda: running_pods(api) if len(running_pods(api)) == 6 else None,
        120,
    )


def ready(api: apis.Api, node: str) -> bool:
    conditions = api.get(f"/api/v1/nodes/{node}", "read node").get("status", {}).get("conditions")
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions or [])


def running_pods(api: apis.Api) -> dict[str, str]:
    items = api.get(f"/api/v1/namespaces/{NS}/pods", "list pods", labelSelector=f"app={APP}")
    return {
        p["metadata"]["name"]: p["spec"].get("nodeName", "")
        for p in items["items"]
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    }


# --- the processes ---------------------------------------------------------------------------


@contextlib.contextmanager
def process(args: list[str], logfile: Path) -> Iterator[subprocess.Popen[bytes]]:
    out = logfile.open("wb")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def kopilot(*args: str) -> list[str]:
    return [sys.executable, "-m", "kopilot.cli", *args]


def prometheus_config(workdir: Path, target: str) -> Path:
    path = workdir / "prometheus.yml"
    path.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: replay\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    return path


def policy_file(workdir: Path, *, acting: bool, speed: float) -> Path:
    path = workdir / "policy.yaml"
    path.write_text(
        f"dry_run: {'false' if acting else 'true'}\n"
        "families:\n"
        "  health:\n"
        "    require_approval: [Restart, Cordon]\n"
        f"    leak_horizon_s: {7200.0 / speed:g}\n"
        f"    xid_count: {3.0 / speed:g}\n"
        f"    xid_window_s: {2400.0 / speed:g}\n"
    )
    return path


def trace_time(exporter: str) -> float:
    """The replay's trace time now, from its /healthz ("ok: trace time 1234 s")."""
    text = httpx.get(f"{exporter}/healthz", timeout=5).text
    return float(text.split("trace time ", 1)[1].split()[0])


def query(prom: str, q: str) -> float:
    r = httpx.get(f"{prom}/api/v1/query", params={"query": q}, timeout=10)
    r.raise_for_status()
    result = r.json()["data"]["result"]
    return sum(float(s["value"][1]) for s in result)


# --- the scenario ----------------------------------------------------------------------------


@dataclass(slots=True)
class Audit:
    """Reads the audit log `kopilot run` appends to, from where it was last read."""

    path: Path
    offset: int = 0

    def new(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]


@dataclass(frozen=True, slots=True, kw_only=True)
class Targets:
    """Where each fault goes, chosen from the layout at the start the same way in both runs
    (the scheduler spreads the six pods 2, 2, 1, 1 when it can): the leak in a pod of the
    busiest node, the XID storm on the next; the bad node is picked when it is injected
    (`bad_node` only breaks ties)."""

    leak_pod: str
    leak_node: str
    xid_node: str
    bad_node: str

    @staticmethod
    def of(pods: dict[str, str]) -> Targets:
        count = {n: sum(1 for m in pods.values() if m == n) for n in NODES}
        busy = sorted(NODES, key=lambda n: (-count[n], n))
        leak_pod = min(p for p, n in pods.items() if n == busy[0])
        return Targets(leak_pod=leak_pod, leak_node=busy[0], xid_node=busy[1], bad_node=busy[2])


def fault_body(
    kind: str, at: Targets, pods: dict[str, str], timing: Timing
) -> tuple[dict[str, Any], str]:
    """The POST /faults body of `kind`, and the target the remedy must name."""
    duration = f"{round(timing.windows[kind] * timing.speed)}s"
    if kind == "leak":
        pod = at.leak_pod
        leak = {
            "kind": "leak",
            "pod": f"{NS}/{pod}",
            "mib_per_min": timing.leak_mib_per_min,
            "duration": duration,
        }
        return leak, f"pod/{NS}/{pod}"
    if kind == "xid-storm":
        node = at.xid_node
        return {"kind": "xid-storm", "node": node, "gpu": 0, "duration": duration}, f"node/{node}"
    if kind == "bad-node":
        # The busiest node now other than the XID storm's and the leak's: a drain may have
        # moved pods since the start, and a bad node without pods costs nothing to anyone.
        count = {n: sum(1 for m in pods.values() if m == n) for n in NODES}
        others = [n for n in NODES if n not in (at.xid_node, at.leak_node)]
        node = min(others, key=lambda n: (-count[n], n != at.bad_node, n))
        return {"kind": "bad-node", "node": node, "duration": duration}, f"node/{node}"
    body = {"kind": "latency-regression", "service": f"{NS}/{APP}", "factor": 3.0}
    return {**body, "duration": duration}, f"service/{NS}/{APP}"


def from_health(record: dict[str, Any]) -> bool:
    """A verdict on a health action, or health's audited skip of a cycle."""
    policy = str((record.get("action") or {}).get("policy", ""))
    return policy.startswith("health") or record.get("family") == "health"


def matches(record: dict[str, Any], target: str) -> bool:
    """Whether `record` is health's remedy for the fault on `target`: the Restart of the leaking
    pod (not an alert about it), the Cordon of the node, or any action on the service's latency or its pods' (a service
    stream that fired earlier stays quiet for health's `refire_s`; its pods' streams speak)."""
    action = record.get("action") or {}
    if not from_health(record):
        return False
    if target.startswith("node/"):
        return action.get("kind") == "Cordon" and action.get("node") == target[5:]
    if target.startswith("service/"):
        metric = (action.get("evidence") or {}).get("metric")
        on = str(action.get("target", ""))
        return metric == "latency_ms" and (on == target or on.startswith(f"pod/{NS}/{APP}-"))
    return action.get("kind") == "Restart" and str(action.get("target", "")) == target


def cost(
    prom: str, kind: str, target: str, pods_then: dict[str, str], timing: Timing
) -> dict[str, float]:
    """What the fault cost over its window, in trace units (the exporter's counters advance at
    the trace's rate divided by the speed)."""
    window = f"{round(timing.windows[kind])}s"
    if kind == "leak":
        pod = target.rsplit("/", maxsplit=1)[-1]
        q = f'max_over_time(sum(kube_pod_container_status_restarts_total{{namespace="{NS}",pod="{pod}"}})[{window}:1s])'
        return {"OOM-kills": query(prom, q)}
    if kind in ("xid-storm", "bad-node"):
        node = target[5:]
        on_node = "|".join(p for p, n in pods_then.items() if n == node) or "none"
        minutes = query(
            prom, f'count_over_time(kube_pod_info{{node="{node}",namespace="{NS}"}}[{window}])'
        )
        failed = query(
            prom,
            f'sum(increase(kopilot_serving_request_failures_total{{namespace="{NS}",pod=~"{on_node}"}}[{window}]))',
        )
        return {
            "pod-min on bad node": minutes * timing.speed / 60.0,
            "failed requests": failed * timing.speed,
        }
    failed = query(
        prom, f'sum(increase(kopilot_serving_request_failures_total{{namespace="{NS}"}}[{window}]))'
    )
    return {"failed requests": failed * timing.speed}


def approve(record: dict[str, Any], queue: Path) -> None:
    rid = str(record["verdict"]).rsplit("kopilot approve ", 1)[1].strip("` ").split()[0]
    subprocess.run(
        kopilot("approve", rid, "--queue", str(queue)), check=True, capture_output=True, timeout=60
    )


def run_mode(
    mode: str, timing: Timing, seed: int, binaries: controlplane.Binaries, keep: Path | None
) -> RunResult:
    acting = mode == "remediating"
    with contextlib.ExitStack() as stack:
        if keep is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"kopilot-{mode}-")))
        else:
            work = keep / mode
            work.mkdir(parents=True, exist_ok=True)
        log(f"{mode}: starting the control plane")
        cp = stack.enter_context(
            controlplane.running(binaries=binaries, workdir=work / "cp", clock=clocks.WallClock())
        )
        api_client = config.new_client_from_config(config_file=str(cp.kubeconfig))
        stack.callback(api_client.close)
        api = apis.Api(
            api_client,
            retrying.Retrier(clocks.WallClock(), random.Random(seed), retrying.Backoff(attempts=3)),
        )
        pods = make_cluster(api)
        log(f"{mode}: {len(NODES)} kwok GPU nodes, {len(pods)} detector pods Running")
        port = free_port()
        exporter = f"http://127.0.0.1:{port}"
        stack.enter_context(
            process(
                kopilot(
                    "replay-exporter",
                    "--kubeconfig",
                    str(cp.kubeconfig),
                    "--port",
                    str(port),
                    "--speed",
                    f"{timing.speed:g}",
                    "--seed",
                    str(seed),
                    "--refresh",
                    "2",
                ),
                work / "exporter.log",
            )
        )
        wait_until(
            "the replay exporter",
            lambda: httpx.get(f"{exporter}/healthz", timeout=2).status_code == 200,
            60,
        )
        prom_port = free_port()
        prom = f"http://127.0.0.1:{prom_port}"
        stack.enter_context(
            process(
                [
                    "prometheus",
                    f"--config.file={prometheus_config(work, f'127.0.0.1:{port}')}",
                    f"--storage.tsdb.path={work / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                work / "prometheus.log",
            )
        )
        wait_until(
            "Prometheus", lambda: httpx.get(f"{prom}/-/ready", timeout=2).status_code == 200, 60
        )
        audit_path, queue = work / "audit.jsonl", work / "approvals.jsonl"
        run_args = [
            "run",
            "--kubeconfig",
            str(cp.kubeconfig),
            "--prometheus-url",
            prom,
            "--interval",
            "2",
            "--signals-history",
            f"{timing.history_s:g}",
            "--signals-step",
            "2",
            "--namespace",
            NS,
            "--metrics-port",
            "-1",
            "--no-leader-elect",
            "--audit-log",
            str(audit_path),
            "--approvals",
            str(queue),
            "--policy",
            str(policy_file(work, acting=acting, speed=timing.speed)),
            "-v",
        ]
        run = stack.enter_context(process(kopilot(*run_args), work / "kopilot.log"))
        time.sleep(3)
        if run.poll() is not None:
            raise SystemExit(f"kopilot run exited: {(work / 'kopilot.log').read_text()[-2000:]}")
        audit = Audit(audit_path)
        log(
            f"{mode}: kopilot run started; normal stretch of {timing.normal_s:.0f} s ({timing.normal_s * timing.speed / 3600:.1f} trace h)"
        )
        pause(timing.normal_s)
        normal = [r for r in audit.new() if from_health(r)]
        remedies = [
            f"{r['action']['kind']} {r['action']['target']}"
            for r in normal
            if (r.get("action") or {}).get("kind") in REMEDIES
        ]
        alerts = sum(1 for r in normal if (r.get("action") or {}).get("kind") == "Alert")
        skipped = sum(1 for r in normal if r.get("outcome") == "skipped")
        log(
            f"{mode}: normal stretch: {len(remedies)} remediations, {alerts} alerts, {skipped} cycles skipped"
        )
        parts = Live(
            mode=mode,
            acting=acting,
            api=api,
            exporter=exporter,
            prom=prom,
            audit=audit,
            queue=queue,
            timing=timing,
            targets=Targets.of(pods),
        )
        outcomes = [run_fault(kind, parts) for kind in timing.faults]
        return RunResult(
            mode=mode, normal_remedies=remedies, normal_alerts=alerts, outcomes=outcomes
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Live:
    """One mode's running parts: the API server, the exporter, Prometheus, kopilot's files."""

    mode: str
    acting: bool
    api: apis.Api
    exporter: str
    prom: str
    audit: Audit
    queue: Path
    timing: Timing
    targets: Targets


def run_fault(kind: str, live: Live) -> Outcome:
    api, exporter, prom, audit, queue = live.api, live.exporter, live.prom, live.audit, live.queue
    timing, acting, mode = live.timing, live.acting, live.mode
    pods = running_pods(api)
    body, target = fault_body(kind, live.targets, pods, timing)
    audit.new()  # what came before the fault is not its detection
    response = httpx.post(f"{exporter}/faults", json=body, timeout=10)
    response.raise_for_status()
    trace_now = trace_time(exporter)
    out = Outcome(
        fault=kind, target=target, injected_wall=time.monotonic(), injected_trace=trace_now
    )
    log(f"{mode}: injected {kind} on {target}")
    end = out.injected_wall + timing.windows[kind]
    while time.monotonic() < end:
        for r in audit.new():
            if not matches(r, target):
                continue
            now = time.monotonic()
            if out.detected_wall is None:
                out.detected_wall = now
                out.action, out.verdict = r["action"]["kind"], r["outcome"]
                log(
                    f"{mode}: {kind} detected after {now - out.injected_wall:.0f} s: {out.action} {r['outcome']}"
                )
                if acting and r["outcome"] == "pending-approval":
                    approve(r, queue)
                    out.approval_wait_s = time.monotonic() - now
                    log(f"{mode}: approved with `kopilot approve` ({out.approval_wait_s:.1f} s)")
            elif (
                acting
                and r["outcome"] == "approved"
                and out.applied_wall is None
                and r["action"]["kind"] == out.action
            ):
                out.applied_wall = now
                out.verdict = "approved"
                log(f"{mode}: {out.action} applied {now - out.injected_wall:.0f} s after injection")
        pause(0.5)
    out.cost = cost(prom, kind, target, pods, timing)
    log(f"{mode}: {kind}: " + ", ".join(f"{k} {v:.0f}" for k, v in out.cost.items()))
    return out


# --- the report ------------------------------------------------------------------------------


def report(observe: RunResult, act: RunResult, timing: Timing) -> str:
    lines = [
        "| fault | target | detected after (trace / wall) | action | governor's verdict | approval wait | observe-only | remediating | saved |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for o, a in zip(observe.outcomes, act.outcomes, strict=True):

        def when(x: Outcome) -> str:
            if x.detected_wall is None:
                return "not detected"
            wall = x.detected_wall - x.injected_wall
            return f"{wall * timing.speed / 60:.0f} min / {wall:.0f} s"

        keys = list(o.cost)
        saved = ", ".join(f"{k} {o.cost[k] - a.cost.get(k, 0):.0f}" for k in keys)
        wait = f"{a.approval_wait_s:.1f} s" if a.approval_wait_s is not None else "-"
        lines.append(
            f"| {a.fault} | {a.target} | {when(a)} (observe-only: {when(o)}) | {a.action} | {a.verdict} | {wait} | "
            + ", ".join(f"{k} {o.cost[k]:.0f}" for k in keys)
            + " | "
            + ", ".join(f"{k} {a.cost.get(k, 0):.0f}" for k in keys)
            + f" | {saved} |"
        )
    for r in (observe, act):
        lines.append(
            f"\n{r.mode}: normal stretch ({timing.normal_s * timing.speed / 3600:.1f} trace h): {len(r.normal_remedies)} remediations (false: goal 0){': ' + '; '.join(r.normal_remedies) if r.normal_remedies else ''}, {r.normal_alerts} alerts"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=60.0, help="trace seconds per wall second")
    parser.add_argument("--seed", type=int, default=0, help="the replay's noise seed")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep every log (control plane, exporter, Prometheus, kopilot run, audit) here",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short normal stretch and the leak only"
    )
    args = parser.parse_args()
    if args.quick:
        timing = Timing(
            speed=args.speed,
            normal_s=30.0,
            windows={"leak": 90.0},
            history_s=40.0,
            leak_mib_per_min=30.0,
        )
    else:
        timing = Timing(
            speed=args.speed,
            normal_s=180.0,
            windows={
                "leak": 120.0,
                "xid-storm": 80.0,
                "bad-node": 75.0,
                "latency-regression": 75.0,
            },
            history_s=130.0,
            leak_mib_per_min=20.0,
        )
    cache = Path(os.environ.get("KOPILOT_CACHE", Path.home() / ".cache" / "kopilot"))
    binaries = controlplane.pinned_binaries(
        cache=cache, versions_file=REPO / "hack" / "controlplane" / "versions.env"
    )
    missing = binaries.missing()
    if missing:
        raise SystemExit(
            f"control-plane binaries missing ({', '.join(missing)}): run `bash scripts/setup.d/50-controlplane.sh`"
        )
    started = time.monotonic()
    log(f"speed {timing.speed:g}x, seed {args.seed}; load average {os.getloadavg()[0]:.1f}")
    # The two runs are independent (each its own control plane, exporter, Prometheus and
    # kopilot run), so they run side by side: the same trace, the same faults at the same
    # moments, half the wall time.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        observing = pool.submit(run_mode, "observe-only", timing, args.seed, binaries, args.keep)
        acting = pool.submit(run_mode, "remediating", timing, args.seed, binaries, args.keep)
        try:
            observe, act = observing.result(), acting.result()
        except KeyboardInterrupt:
            STOPPING.set()
            raise
    print()
    print(report(observe, act, timing))
    print(f"\nwhole run {time.monotonic() - started:.0f} s; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""The replay: the Prometheus series of a cluster's exporters, stepped through real traces.

For every node and pod of a cluster description (sim/clusterfiles.py) it keeps what
kube-state-metrics, cAdvisor, dcgm-exporter and kopilot's serving runtime would publish, under
their real names and labels (docs/signals.md), and steps them through trace time in fixed ticks:

- demand: the Alibaba GenAI request rate (`genai_qps.csv`), normalised to [0, 1], drives each
  serving pod's requests, latency and memory through the fault twin's model (sim/behaviours.py);
- GPU duty cycles: eight real GenTD26 pods (`genai_gpu_duty_cycle.csv`), one per GPU in turn;
  temperature follows the duty cycle, framebuffer use is synthetic (9 GiB + 6 GiB x duty);
- CPU: two real Crane application series (`crane_cpu_24h.csv`), shaped to each pod's request;
- faults (sim/injections.py) change all of these while they are active.

Values depend only on the seed, the cluster, the faults and the trace time, never on when they are
read: stepping to 2 h at once or in a thousand small steps gives the same numbers. Counters of
requests, failures, request durations and CPU seconds advance at the trace's rate divided by
`speed`, so that `rate()` over wall-clock scrapes reads the trace's per-second rates while the
trace plays `speed` times faster. The XID counter `DCGM_EXP_XID_ERRORS_TOTAL` follows the same
rule (each XID adds 1/speed), so docs/signals.md's `60 * rate(...)` reads XIDs per trace minute;
`DCGM_EXP_XID_ERRORS_COUNT` counts the XIDs of the last `xid_window_s` of trace time and
`DCGM_FI_DEV_XID_ERRORS` is the last XID's code. OOM-kills (the restarts counter) are counted
whole, when they happen in trace time; the killed container's own counters (CPU seconds, requests,
failures, durations) start again from 0, as a new process's do, and `rate()` sees a reset.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from kopilot.kits import randomness
from kopilot.model import series
from kopilot.sim import behaviours, clusterfiles, exporters, injections, scenarios
from kopilot.traces import genai, usage

XID_BACKGROUND_PER_MIN = 0.002
"""XIDs a minute of any GPU (an application fault now and then, XID 13), as the twin has."""
MAX_STEPS_PER_S = 1000
"""Steps of the replay a wall second it may be asked to keep up with (speed / tick)."""
_LATENCY_SIGMA = 0.35
"""Spread of log(request duration): p99 is 2.26 x the median."""
_Z99 = 2.3263478740408408


@dataclass(frozen=True, slots=True, kw_only=True)
class Traces:
    demand: series.Series
    duty: usage.UsageTrace
    cpu: usage.UsageTrace


def bundled_traces() -> Traces:
    """The real traces bundled in kopilot/data (see SOURCE.md there)."""
    return Traces(
        demand=genai.load_qps(scenarios.locate("genai_qps.csv", None)),
        duty=usage.load(scenarios.locate("genai_gpu_duty_cycle.csv", None), "timestamp_anon"),
        cpu=usage.load(scenarios.locate("crane_cpu_24h.csv", None), "ts"),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    latency_buckets: tuple[float, ...]
    """Upper bounds of `kopilot_serving_request_duration_seconds` (the serving runtime's)."""
    seed: int = 0
    speed: float = 60.0
    """Trace seconds per wall second."""
    tick_s: float = 15.0
    """Trace seconds per step."""
    start_s: float = 0.0
    """Trace time of the first step (0 = the demand trace's first sample)."""
    xid_window_s: float = 300.0


class Replay:
    """The cluster's series at trace time `now_s`; `advance_to` steps it, `inject` adds faults."""

    def __init__(
        self,
        cluster: clusterfiles.ClusterSpec,
        traces: Traces,
        settings: Settings,
        faults: Iterable[injections.FaultRequest] = (),
    ) -> None:
        if settings.speed <= 0 or settings.tick_s <= 0:
            raise ValueError("speed and tick_s must be positive")
        if settings.speed / settings.tick_s > MAX_STEPS_PER_S:
            raise ValueError(
                f"--speed {settings.speed:g} with --tick {settings.tick_s:g} is "
                f"{settings.speed / settings.tick_s:,.0f} steps a wall second (at most "
                f"{MAX_STEPS_PER_S:,}): raise --tick or lower --speed"
            )
        self.cluster = cluster
        self.settings = settings
        self._log_bounds = tuple(math.log(b) for b in settings.latency_buckets)
        self._rnd = np.random.default_rng(randomness.rng(settings.seed, "replay").getrandbits(64))
        d = traces.demand
        self._demand_t = d.times - d.times[0]
        self._demand_v = d.values / (float(np.max(d.values)) or 1.0)
        self._demand_span = float(self._demand_t[-1]) + float(np.median(np.diff(d.times)))
        self._duty = traces.duty
        self._duty_offset = float(d.times[0] - traces.duty.times[0])
        self._cpu = traces.cpu
        self._cpu_top = np.maximum(np.max(traces.cpu.values, axis=0), 1e-9)
        self._pods, self._gpus = self._objects(cluster, {}, {})
        self._faults: list[injections.Fault] = []
        self._leaks_reset: set[int] = set()
        self.now_s = settings.start_s
        for f in faults:
            self.inject(f)
        self._step(self.now_s, 0.0)

    def _objects(
        self,
        cluster: clusterfiles.ClusterSpec,
        pods_before: Mapping[str, exporters.PodState],
        gpus_before: Mapping[str, exporters.GpuState],
    ) -> tuple[list[exporters.PodState], list[exporters.GpuState]]:
        """State for every pod and GPU of `cluster`, kept for those that were there before."""
        pods: list[exporters.PodState] = []
        gpu_pods = 0
        nodes = {n.name: j for j, n in enumerate(cluster.nodes)}
        for i, p in enumerate(cluster.pods):
            pod = pods_before.get(p.key)
            if pod is not None:
                pod.spec = p
            else:
                pod = exporters.PodState(
                    spec=p,
                    uid=_uid(p.key),
                    ip=f"10.244.{nodes[p.node] % 256}.{(i % 250) + 2}",
                    column=gpu_pods if p.gpus else i,
                    buckets=[0.0] * len(self.settings.latency_buckets),
                )
            gpu_pods += 1 if p.gpus else 0
            pods.append(pod)
        owners = {(p.spec.node, g): p for p in pods for g in p.spec.gpus}
        gpus: list[exporters.GpuState] = []
        for n in cluster.nodes:
            for g in n.gpus:
                gpu = gpus_before.get(f"{n.name}/{g.index}")
                if gpu is None:
                    gpu = exporters.GpuState(node=n, spec=g, pod=None)
                gpu.node, gpu.spec, gpu.pod = n, g, owners.get((n.name, g.index))
                gpus.append(gpu)
        return pods, gpus

    def update_cluster(self, cluster: clusterfiles.ClusterSpec) -> None:
        """Serve `cluster` from now on; pods and GPUs that stay keep their counters and state."""
        self._pods, self._gpus = self._objects(
            cluster,
            {p.spec.key: p for p in self._pods},
            {f"{g.node.name}/{g.spec.index}": g for g in self._gpus},
        )
        self.cluster = cluster

    # -- faults ----------------------------------------------------------------------------
    def inject(self, request: injections.FaultRequest) -> injections.Fault:
        """Add a fault (from now if it has no start); InvalidInputError names a bad target."""
        fault = request.resolve(
            fault_id=len(self._faults) + 1, now_s=self.now_s, cluster=self.cluster
        )
        self._faults.append(fault)
        return fault

    @property
    def faults(self) -> tuple[injections.Fault, ...]:
        return tuple(self._faults)

    # -- time ------------------------------------------------------------------------------
    def advance_to(self, t: float) -> int:
        """Step every whole tick up to trace time `t`; returns the ticks stepped."""
        dt = self.settings.tick_s
        steps = 0
        while self.now_s + dt <= t:
            self.now_s += dt
            self._step(self.now_s, dt)
            steps += 1
        return steps

    def load(self, t: float) -> float:
        """Demand at trace time `t`, normalised to [0, 1] (the trace repeats)."""
        at = t % self._demand_span
        k = int(np.searchsorted(self._demand_t, at, side="right")) - 1
        return float(self._demand_v[max(0, min(k, len(self._demand_v) - 1))])

    def _step(self, t: float, dt: float) -> None:
        rnd, s = self._rnd, self.settings
        load = self.load(t)
        duty = self._duty.at(t + self._duty_offset)
        cpu_shape = self._cpu.at(t) / self._cpu_top
        active = [f for f in self._faults if f.active(t)]
        for f in self._faults:
            ended = f.status(t) is injections.Status.ENDED
            if f.kind is injections.Kind.LEAK and ended and f.id not in self._leaks_reset:
                # The leak is fixed: the new version rolls out and the pod starts afresh.
                self._leaks_reset.add(f.id)
                for pod in self._pods:
                    if pod.spec.key == f.target:
                        pod.leak_mib = 0.0
        storms = {f.target: f for f in active if f.kind is injections.Kind.XID_STORM}
        dead: set[str] = set()
        for g in self._gpus:
            key = f"{g.node.name}/{g.spec.index}"
            rate = XID_BACKGROUND_PER_MIN
            code = exporters.XID_APP
            storm = storms.get(key)
            if storm is not None:
                since = t - storm.at_s
                rate += behaviours.xid_rate_per_min(since / 3600.0)
                code = exporters.XID_STORM
                if since >= storm.knob:
                    dead.add(key)
                    code = exporters.XID_OFF_BUS
            util = 0.0 if g.pod is None or key in dead else float(duty[g.pod.column % len(duty)])
            g.util = util
            g.temperature = behaviours.temperature_c(util / 100.0, rnd)
            g.fb_used_mib = 0.0 if g.pod is None else 9216.0 + 6144.0 * util / 100.0
            n = int(rnd.poisson(rate * dt / 60.0))
            if n:
                g.last_xid = code
                g.xids.append((t, code, n))
                g.xid_totals[code] = g.xid_totals.get(code, 0.0) + n / s.speed
            while g.xids and g.xids[0][0] <= t - s.xid_window_s:
                g.xids.popleft()
        leaks = {f.target: f.knob for f in active if f.kind is injections.Kind.LEAK}
        bad = {f.target: f.knob for f in active if f.kind is injections.Kind.BAD_NODE}
        slower = {f.target: f.knob for f in active if f.kind is injections.Kind.LATENCY_REGRESSION}
        for p in self._pods:
            spec = p.spec
            limit_mib = spec.memory_limit_bytes / exporters.MIB
            p.leak_mib += leaks.get(spec.key, 0.0) * dt / 60.0
            memory = behaviours.memory_mib(load, rnd, limit_mib=limit_mib) + p.leak_mib
            oom = 0.0
            if memory >= limit_mib:  # OOM-killed: a new container, without the leak
                p.restarts += 1
                p.leak_mib = 0.0
                # ... and a new process: its counters start again from 0, as real ones do
                p.cpu_seconds = p.ok = p.failed = p.count = p.total_s = 0.0
                p.buckets = [0.0] * len(p.buckets)
                oom = behaviours.OOM_KILL_ERRORS
                memory = behaviours.quiet_memory_mib(load, limit_mib=limit_mib)
            p.memory_mib = memory
            request = spec.requests.get("cpu", 0.1)
            cores = 0.9 * request * float(cpu_shape[p.column % len(cpu_shape)])
            p.cores = min(cores, spec.limits.get("cpu", math.inf))
            p.cpu_seconds += p.cores * dt / s.speed
            if spec.serving is None:
                continue
            extra, slow = 0.0, 1.0
            for gi in spec.gpus:
                storm = storms.get(f"{spec.node}/{gi}")
                if storm is not None:
                    extra += 0.5 * behaviours.xid_rate_per_min((t - storm.at_s) / 3600.0)
                if f"{spec.node}/{gi}" in dead:
                    extra += behaviours.DEAD_GPU_ERRORS_PER_MIN
                    slow *= behaviours.DEAD_GPU_SLOWDOWN
            if spec.node in bad:
                extra += behaviours.BAD_NODE_ERRORS_PER_MIN
                slow *= bad[spec.node]
            slow *= slower.get(spec.service, 1.0)
            minutes = dt / 60.0
            requests = spec.serving.peak_rps * load * dt
            errors = behaviours.baseline_errors(rnd, minutes=minutes)
            errors += float(rnd.poisson(extra * minutes)) + oom
            p99_ms = behaviours.latency_ms(
                load, rnd, slowdown=slow, base_ms=spec.serving.latency_ms
            )
            answered = max(requests, errors) / s.speed
            p.failed += errors / s.speed
            p.ok += max(0.0, requests - errors) / s.speed
            self._observe(p, answered, max(p99_ms, 1.0) / 1000.0)

    def _observe(self, p: exporters.PodState, n: float, p99_s: float) -> None:
        """Add `n` requests whose durations are log-normal with the given p99."""
        if n <= 0:
            return
        log_median = math.log(p99_s) - _Z99 * _LATENCY_SIGMA
        scale = 1.0 / (_LATENCY_SIGMA * math.sqrt(2.0))
        buckets = p.buckets
        for i, log_bound in enumerate(self._log_bounds):
            buckets[i] += n * 0.5 * (1.0 + math.erf((log_bound - log_median) * scale))
        p.count += n
        p.total_s += n * math.exp(log_median + _LATENCY_SIGMA**2 / 2.0)

    # -- what the exporters publish --------------------------------------------------------
    def families(self) -> tuple[exporters.Family, ...]:
        """Every metric family at the current trace time."""
        return (
            *exporters.kube_state(self.cluster, self._pods),
            *exporters.cadvisor(self._pods),
            *exporters.dcgm(self._gpus),
            *exporters.serving(self._pods, self.settings.latency_buckets),
        )


def _uid(key: str) -> str:
    h = hashlib.sha256(key.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


__all__ = ["Replay", "Settings", "Traces", "bundled_traces"]

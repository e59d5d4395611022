"""The health policy: score every metric stream of the snapshot, turn findings into playbook actions.

Streams come from `ClusterSnapshot.metrics`, keyed `<where>/<subject>/<metric>`, e.g.
`pod/ml/detector-3/memory_mib`, `gpu/node-2/1/xid_per_min`, `node/node-4/errors_per_min`. Each
cycle the newest value of every stream goes through one vectorised detector (`ensembles.default`);
a stream whose score reaches the threshold becomes an `Anomaly`, classified by its metric, and the
playbooks propose the remedy. Findings are data (`Finding`), kept in the policy's state, so a
simulation can measure detection delay and false alarms.

The detector keeps running statistics: that state is the policy's state object, passed in and
returned each cycle like any other policy state (it is updated in place for speed). Streams that
appear together share a detector (a `Cohort`); a stream that appears later gets a new one, so the
streams already learnt keep what they learnt while pods come and go.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kopilot.health import ensembles, playbooks
from kopilot.model import actions, cluster, decisions, series

METRIC_KINDS: dict[str, playbooks.What] = {
    "latency_ms": playbooks.What.LATENCY,
    "errors_per_min": playbooks.What.ERRORS,
    "memory_mib": playbooks.What.LEAK,
    "temperature_c": playbooks.What.THERMAL,
    "xid_per_min": playbooks.What.HARDWARE_ERROR,
}
"""What an anomaly on a metric means. A memory anomaly counts as a leak only if it looks like one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamKey:
    where: playbooks.Where
    subject: str
    metric: str

    @staticmethod
    def parse(key: str) -> StreamKey:
        where, rest = key.split("/", 1)
        subject, metric = rest.rsplit("/", 1)
        return StreamKey(where=playbooks.Where(where), subject=subject, metric=metric)


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    key: str
    at: float
    score: float
    what: str
    detector: str
    """ensemble (learned normal), shift (robust level shift), xid (hardware-error rule) or leak."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorSettings:
    threshold: float = 0.5
    """Ensemble score at which a stream is anomalous."""
    shift_k: float = 10.0
    """Robust z (median / MAD of the trailing window) at which a level shift counts..."""
    shift_points: int = 2
    """... when this many newest points all exceed it."""
    shift_window: int = 60
    xid_window_s: float = 600.0
    xid_count: float = 3.0
    """XID errors within the window that make a GPU suspect (NVIDIA treats XIDs as actionable)."""
    leak_horizon_s: float = 2 * 3600.0
    """A leak-like memory stream is flagged when its trend reaches the pod's memory limit (its
    request when it has no limit) this soon."""
    refire_s: float = 3600.0
    """A stream that fired stays quiet this long (its remedy needs time to work)."""
    corroborate_k: float = 3.0
    """An ensemble finding also needs the newest points this far (robust z) from the recent level,
    so a value equal to its own recent history is never called anomalous."""
    probation: int = 720
    """Points the ensemble learns from before its scores count (NAB's probationary period idea)."""
    cohort_min_live: float = 0.5
    """A cohort whose streams are mostly gone (fewer than this share left) is retired: its
    remaining streams start again in a new cohort, so dead streams are not carried forever."""
    max_cohorts: int = 32
    """Beyond this many cohorts (a cluster that churns), all streams start again in one."""


@dataclass(slots=True)
class Cohort:
    """Streams that first appeared together, and the detector that learns them.

    Streams come and go in a live cluster (a pod replaced, a node added): a new stream joins a
    new cohort, and the streams already learnt keep their detector, which sees a missing point
    (NaN) for a member that is gone."""

    keys: tuple[str, ...]
    detector: ensembles.Ensemble
    seen: int = 0
    """Points the detector has learnt from; its scores count only after the probation."""


@dataclass(slots=True)
class MonitorState:
    cohorts: list[Cohort] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    fired: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Detect anomalies on every stream and propose the playbooks' remedies.

    Four detectors vote independently: the learned-normal ensemble (what NAB scores), a robust
    level-shift test, an XID-count rule for GPUs, and a leak test for memory (linear growth that
    reaches the pod's memory limit, or its request without one, within the horizon). Each
    finding names its detector.
    """

    settings: MonitorSettings = field(default_factory=MonitorSettings)
    playbook: playbooks.PlaybookSettings = field(default_factory=playbooks.PlaybookSettings)

    @property
    def name(self) -> str:
        return "health"

    def initial_state(self) -> MonitorState:
        return MonitorState()

    def decide(
        self, snapshot: cluster.ClusterSnapshot, state: MonitorState, now: float
    ) -> decisions.Decision[MonitorState]:
        keys = tuple(sorted(snapshot.metrics))
        cfg = self.settings
        scores = self._scores(snapshot, state, keys, now)
        shifts = _robust_z(
            [snapshot.metrics[k].values for k in keys],
            np.array([k.endswith("_per_min") for k in keys]),
            cfg.shift_window,
            cfg.shift_points,
        )
        proposed: list[actions.Action] = []
        for i, key in enumerate(keys):
            if now - state.fired.get(key, -math.inf) < cfg.refire_s:
                continue
            s = snapshot.metrics[key]
            hit = self._detect(key, s, scores[key], float(shifts[i]), snapshot)
            if hit is None:
                continue
            detector, score = hit
            anomaly = self._anomaly(key, score, now, s, detector)
            state.fired[key] = now
            state.findings.append(
                Finding(key=key, at=now, score=score, what=str(anomaly.what), detector=detector)
            )
            proposed.extend(playbooks.propose(anomaly, snapshot, self.playbook))
        return decisions.Decision(actions=_dedupe(proposed), state=state)

    def _scores(
        self,
        snapshot: cluster.ClusterSnapshot,
        state: MonitorState,
        keys: tuple[str, ...],
        now: float,
    ) -> dict[str, float]:
        """The ensemble's score of every stream (0 while its cohort is on probation)."""
        cfg = self.settings
        present = set(keys)
        state.cohorts = [
            c
            for c in state.cohorts
            if sum(k in present for k in c.keys) >= cfg.cohort_min_live * len(c.keys)
        ]
        covered = {k for c in state.cohorts for k in c.keys}
        new = tuple(k for k in keys if k not in covered)
        if new and len(state.cohorts) >= cfg.max_cohorts:
            state.cohorts, new = [], keys
        if new:
            state.cohorts.append(Cohort(keys=new, detector=ensembles.default(len(new))))
        scores: dict[str, float] = {}
        for c in state.cohorts:
            values = np.array(
                [_newest(snapshot.metrics[k], now) if k in present else math.nan for k in c.keys],
                dtype=np.float64,
            )
            scored = c.detector.update(values)
            c.seen += 1
            if c.seen <= cfg.probation:
                scored = np.zeros_like(scored)
            scores.update(
                (k, float(v)) for k, v in zip(c.keys, scored, strict=True) if k in present
            )
        return scores

    def _detect(
        self,
        key: str,
        s: series.Series,
        score: float,
        shift: float,
        snapshot: cluster.ClusterSnapshot,
    ) -> tuple[str, float] | None:
        cfg = self.settings
        metric = key.rsplit("/", 1)[1]
        if metric == "xid_per_min" and len(s) > 1:
            recent = s.values[s.times > s.times[-1] - cfg.xid_window_s]
            step_min = float(np.median(np.diff(s.times))) / 60.0 if len(s) > 2 else 1.0
            if float(np.nansum(recent)) * step_min >= cfg.xid_count:
                return "xid", 0.95
        if metric == "memory_mib" and self._leaking(key, s, snapshot):
            return "leak", 0.9
        if score >= cfg.threshold and abs(shift) >= cfg.corroborate_k:
            return "ensemble", score
        if abs(shift) >= cfg.shift_k:
            return "shift", min(0.99, 0.6 + abs(shift) / 100.0)
        return None

    def _leaking(self, key: str, s: series.Series, snapshot: cluster.ClusterSnapshot) -> bool:
        if not playbooks.looks_like_leak(s):
            return False
        subject = StreamKey.parse(key).subject
        pod = next((p for p in snapshot.pods if p.key == subject), None)
        if pod is None:
            return False
        ceiling = pod.memory_limit_mib or float(pod.request.memory_mib)
        if ceiling <= 0:
            return False
        per_hour = playbooks.growth_per_hour(s)
        if per_hour <= 0:
            return False
        hours_left = (ceiling - float(s.values[-1])) / per_hour
        return hours_left * 3600.0 <= self.settings.leak_horizon_s

    def _anomaly(
        self, key: str, score: float, now: float, s: series.Series, detector: str
    ) -> playbooks.Anomaly:
        k = StreamKey.parse(key)
        what = METRIC_KINDS.get(k.metric, playbooks.What.OTHER)
        if what is playbooks.What.LEAK and detector != "leak":
            what = playbooks.What.OTHER
        return playbooks.Anomaly(
            where=k.where,
            what=what,
            subject=k.subject,
            metric=k.metric,
            score=score,
            at=now,
            series=s,
        )


def _robust_z(
    streams: Sequence[np.ndarray], counts: np.ndarray, window: int, points: int
) -> np.ndarray:
    """Per stream: the smallest robust z of its newest `points` values against the window before.

    0 where the newest points disagree in sign or the history is too short. The scale is the
    MAD (x 1.4826); for count streams (`*_per_min`) at least half the Poisson spread sqrt(median),
    and never below 0.5, so a quiet stream's single blip is not a shift.
    """
    width = window + points
    m = np.full((len(streams), width), np.nan)
    for i, v in enumerate(streams):
        tail = v[-width:]
        m[i, width - len(tail) :] = tail
    base, new = m[:, :window], m[:, window:]
    enough = np.sum(np.isfinite(base), axis=1) >= window // 2
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: handled by `enough`
        med = np.nanmedian(np.where(enough[:, None], base, 0.0), axis=1)
        mad = 1.4826 * np.nanmedian(np.abs(base - med[:, None]), axis=1)
    floor = np.where(counts, 0.5 * np.sqrt(np.abs(med)), 0.0)
    scale = np.maximum(np.maximum(np.nan_to_num(mad), floor), 0.5)
    z = (new - med[:, None]) / scale[:, None]
    same_sign = np.all(z > 0, axis=1) | np.all(z < 0, axis=1)
    smallest = np.min(np.abs(z), axis=1) * np.sign(z[:, 0])
    ok = enough & same_sign & np.all(np.isfinite(new), axis=1)
    return np.where(ok, smallest, 0.0)


def _newest(s: series.Series, now: float) -> float:
    if len(s) == 0 or s.times[-1] > now or not math.isfinite(float(s.values[-1])):
        return math.nan
    return float(s.values[-1])


def _dedupe(acts: Sequence[actions.Action]) -> tuple[actions.Action, ...]:
    """One action per (kind, target) per cycle: two streams of one node propose one cordon."""
    seen: set[tuple[str, str]] = set()
    out: list[actions.Action] = []
    for a in acts:
        if (a.kind, a.target) not in seen:
            seen.add((a.kind, a.target))
            out.append(a)
    return tuple(out)

"""The detectors the NAB benchmark runs: kopilot's ensemble, its members, and baselines."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kopilot.health import (
    contexts,
    ensembles,
    likelihood,
    ranges,
    streaming,
    suppression,
    zscores,
)


class Null:
    """Never fires: NAB's null detector."""

    def __init__(self, n_streams: int) -> None:
        self._n = n_streams

    @property
    def streams(self) -> int:
        return self._n

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        return np.zeros(self._n)


class ZScoreLikelihood:
    """Rolling |z| as the raw score, HTM's anomaly likelihood on top."""

    def __init__(self, n_streams: int) -> None:
        self._z = zscores.RollingZScore(n_streams, window=1000)
        self._likelihood = likelihood.AnomalyLikelihood(n_streams)

    @property
    def streams(self) -> int:
        return self._z.streams

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        raw = np.abs(self._z.zscores(values))
        return self._likelihood.update(np.where(np.isnan(values), np.nan, raw))


class EnsembleLikelihood:
    """kopilot's ensemble with HTM's anomaly likelihood between the combination and the peak
    filter (an experiment judged by LOCO: see docs/health.md)."""

    def __init__(self, n_streams: int) -> None:
        s = ensembles.EnsembleSettings()
        self._ensemble = ensembles.default(n_streams, s)
        w = np.asarray(ensembles.weights_for(s), dtype=np.float64)
        self._weights = (w / w.sum())[:, None]
        self._likelihood = likelihood.AnomalyLikelihood(n_streams)
        self._filter = suppression.PeakFilter(n_streams, hold=s.hold, quiet=s.quiet, gamma=s.gamma)
        self._scale = s.scale

    @property
    def streams(self) -> int:
        return self._ensemble.streams

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        values = np.where(np.isfinite(values), values, np.nan)
        each = self._ensemble.calibrated(values)
        w = np.where(np.isnan(each), 0.0, self._weights)
        total = w.sum(axis=0)
        combined = np.where(
            total > 0, (w * np.nan_to_num(each)).sum(axis=0) / np.maximum(total, 1e-300), 0.0
        )
        lik = self._likelihood.update(np.where(np.isnan(values), np.nan, combined))
        surprise = self._scale * lik / np.maximum(1.0 - lik, 1e-12)  # back to the surprise scale
        passed = self._filter.update(surprise)
        return passed / (passed + self._scale)


def _member(index: int) -> Callable[[int], streaming.Detector]:
    def make(n: int) -> streaming.Detector:
        members = ensembles.members_for(n, ensembles.EnsembleSettings())
        return ensembles.Single(members[index])

    return make


def member_names() -> list[str]:
    s = ensembles.EnsembleSettings()
    names = [f"member: z-score (smoothing {z.smoothing:g} window {z.window})" for z in s.zscores]
    names += [f"member: contexts ({c.levels} levels, run lengths)" for c in s.contexts]
    names += ["member: range exceedance" for _ in s.ranges]
    names += [f"member: seasonal residual (blocks of {c.block})" for c in s.seasons]
    return names


def _without(group: str) -> Callable[[int], streaming.Detector]:
    def make(n: int) -> streaming.Detector:
        s = ensembles.EnsembleSettings()
        members = ensembles.EnsembleSettings(
            zscores=() if group == "zscores" else s.zscores,
            contexts=() if group == "contexts" else s.contexts,
            ranges=() if group == "ranges" else s.ranges,
            seasons=() if group == "seasons" else s.seasons,
        )
        return ensembles.default(n, members)

    return make


DETECTORS: dict[str, Callable[[int], streaming.Detector]] = {
    "kopilot ensemble": ensembles.default,
    "kopilot ensemble (max instead of mean)": lambda n: ensembles.default(
        n, ensembles.EnsembleSettings(combine="max")
    ),
    **{name: _member(i) for i, name in enumerate(member_names())},
    "ensemble without the range member": _without("ranges"),
    "ensemble without the context member": _without("contexts"),
    "ensemble without the seasonal member": _without("seasons"),
    "kopilot ensemble + HTM likelihood": EnsembleLikelihood,
    "null": Null,
    "static threshold": zscores.StaticThreshold,
    "rolling z-score (raw)": zscores.RollingZScore,
    "context novelty (raw)": contexts.ContextNovelty,
    "range exceedance (raw)": ranges.RangeExceedance,
    "rolling z-score + HTM likelihood": ZScoreLikelihood,
}

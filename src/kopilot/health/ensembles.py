"""kopilot's streaming anomaly detector: calibrated members, combined, then quieted after firing.

    value ──► smoothed z-score ───► calibrate ─┐
          ──► context novelty ────► calibrate ─┤
          ──► range exceedance ───► calibrate ─┼─► weighted mean ─► peak filter ─► score
          ──► seasonal residual ──► calibrate ─┘   (of the members that do not abstain)

- Each member turns the newest value into a raw surprise (`-log10` of a tail probability or an
  exceedance): a z-score of the value smoothed over ~16 points against ~3000 points of history
  (bursts, level shifts), a CAD-OSE-like novelty of the multi-scale context (a missing daily rise,
  a flat stretch, a new level), and a value beyond the range the stream has ever shown (HTM's
  "spatial anomaly"), and the departure from the stream's own cycle (`seasons`: the value one or
  two cycles ago, the cycle learnt online; it abstains on a stream without a cycle).
- `calibration.EmpiricalTail` turns each raw surprise into its rarity under that stream's own
  history of that member's scores, so members and streams share one scale.
- A member abstains with NaN; the mean is then over the members that speak, so a stream without
  a cycle is scored exactly as by the three other members.
- The combination is the weighted mean (`combine="mean"`) or the max of the calibrated
  surprises. On NAB the mean wins: members agreeing that a point is rare is better evidence than
  one member being very sure (the max adds every member's false alarms).
- `suppression.PeakFilter` passes a score only when it beats the stream's recent peak, and stays
  quiet for a while after a detection, so a burst yields one detection.
- The output is mapped into [0, 1) by `s / (s + scale)`.

Everything is vectorised across streams: one `update` scores one new point of every stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from kopilot.health import calibration, contexts, ranges, seasons, streaming, suppression, zscores


class SurpriseMember(Protocol):
    """A member: the newest value of every stream in, a raw surprise (>= 0) per stream out."""

    @property
    def streams(self) -> int: ...

    def surprise(self, values: streaming.FloatArray) -> streaming.FloatArray: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ZScoreSettings:
    window: int = 3000
    smoothing: float = 16.0
    weight: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextSettings:
    levels: int = 12
    scales: tuple[int, ...] = (4, 32, 256)
    buckets: int = 1024
    max_run_bucket: int = 8
    weight: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RangeSettings:
    learning: int = 100
    weight: float = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SeasonSettings:
    block: int = 8
    blocks: int = 256
    smoothing: float = 16.0
    weight: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EnsembleSettings:
    """One configuration for every stream; the defaults are the ones bench/nab.py reports."""

    zscores: tuple[ZScoreSettings, ...] = (ZScoreSettings(),)
    contexts: tuple[ContextSettings, ...] = (ContextSettings(),)
    ranges: tuple[RangeSettings, ...] = (RangeSettings(),)
    seasons: tuple[SeasonSettings, ...] = (SeasonSettings(weight=2.0),)
    combine: Literal["mean", "max"] = "mean"
    calibration_half_life: float | None = None
    hold: int = 300
    quiet: int = 50
    gamma: float = 1.5
    scale: float = 5.0


def members_for(n_streams: int, settings: EnsembleSettings) -> list[SurpriseMember]:
    members: list[SurpriseMember] = [
        zscores.RollingZScore(n_streams, window=z.window, smoothing=z.smoothing)
        for z in settings.zscores
    ]
    members += [
        contexts.ContextNovelty(
            n_streams,
            levels=c.levels,
            scales=c.scales,
            buckets=c.buckets,
            max_run_bucket=c.max_run_bucket,
        )
        for c in settings.contexts
    ]
    members += [ranges.RangeExceedance(n_streams, learning=r.learning) for r in settings.ranges]
    members += [
        seasons.SeasonalResidual(n_streams, block=c.block, blocks=c.blocks, smoothing=c.smoothing)
        for c in settings.seasons
    ]
    return members


def weights_for(settings: EnsembleSettings) -> list[float]:
    return [
        *(z.weight for z in settings.zscores),
        *(c.weight for c in settings.contexts),
        *(r.weight for r in settings.ranges),
        *(c.weight for c in settings.seasons),
    ]


class Ensemble:
    """Calibrate each member, combine, suppress repeats: one anomaly score per stream per step."""

    def __init__(
        self,
        members: Sequence[SurpriseMember],
        *,
        weights: Sequence[float] | None = None,
        combine: Literal["mean", "max"] = "mean",
        calibration_half_life: float | None = None,
        hold: int = 300,
        quiet: int = 50,
        gamma: float = 1.5,
        scale: float = 5.0,
    ) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        w = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(members),) or np.any(w <= 0):
            raise ValueError(f"need one positive weight per member, got {list(w)}")
        self._weights = (w / w.sum())[:, None]
        n = members[0].streams
        if any(m.streams != n for m in members):
            raise ValueError("all members of an ensemble must watch the same streams")
        self._n = n
        self._members = list(members)
        self._calibrators = [
            calibration.EmpiricalTail(n, half_life=calibration_half_life) for _ in members
        ]
        self._combine = combine
        self._filter = suppression.PeakFilter(n, hold=hold, quiet=quiet, gamma=gamma)
        self._scale = scale

    @property
    def streams(self) -> int:
        return self._n

    def calibrated(self, values: streaming.FloatArray) -> streaming.FloatArray:
        """(members, streams) calibrated surprises of the newest values."""
        rows = []
        for m, c in zip(self._members, self._calibrators, strict=True):
            raw = np.where(np.isnan(values), np.nan, m.surprise(values))
            rows.append(np.where(np.isnan(raw) & ~np.isnan(values), np.nan, c.update(raw)))
        return np.stack(rows)

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        # An infinite or NaN sample (a broken exporter) counts as a missing point, not an anomaly.
        values = np.where(np.isfinite(values), values, np.nan)
        each = self.calibrated(values)
        if self._combine == "mean":
            # A member that abstains (NaN: no model for this stream yet) leaves the others' mean.
            w = np.where(np.isnan(each), 0.0, self._weights)
            total = w.sum(axis=0)
            combined = np.where(
                total > 0, (w * np.nan_to_num(each)).sum(axis=0) / np.maximum(total, 1e-300), 0.0
            )
        else:
            combined = np.nan_to_num(each).max(axis=0)
        passed = self._filter.update(combined)
        return passed / (passed + self._scale)


def default(n_streams: int, settings: EnsembleSettings | None = None) -> Ensemble:
    """kopilot's detector with its one configuration for all streams."""
    s = settings or EnsembleSettings()
    return Ensemble(
        members_for(n_streams, s),
        weights=weights_for(s),
        combine=s.combine,
        calibration_half_life=s.calibration_half_life,
        hold=s.hold,
        quiet=s.quiet,
        gamma=s.gamma,
        scale=s.scale,
    )


class Single:
    """One member alone, with the same calibration and peak filter as the ensemble (for bench)."""

    def __init__(self, member: SurpriseMember, settings: EnsembleSettings | None = None) -> None:
        s = settings or EnsembleSettings()
        self._inner = Ensemble(
            [member],
            calibration_half_life=s.calibration_half_life,
            hold=s.hold,
            quiet=s.quiet,
            gamma=s.gamma,
            scale=s.scale,
        )

    @property
    def streams(self) -> int:
        return self._inner.streams

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        return self._inner.update(values)

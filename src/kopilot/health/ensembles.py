"""kopilot's streaming anomaly detector: calibrated members, combined, then quieted after firing.

    value ──► member 1 (z-score) ──► calibrate ─┐
          ──► member 2 (smoothed z) ► calibrate ─┼─► combine (mean) ─► peak filter ─► score
          ──► member 3 (contexts) ──► calibrate ─┘

- Each member turns the newest value into a raw surprise (`-log10` of a tail probability).
- `calibration.EmpiricalTail` turns each raw surprise into its rarity under that stream's own
  history of that member's scores, so members and streams share one scale.
- The combination is the mean (`combine="mean"`) or the max (`combine="max"`) of the members'
  calibrated surprises. On NAB the mean wins: two members agreeing that a point is rare is better
  evidence than one member being very sure (the max adds every member's false alarms).
- `suppression.PeakFilter` passes a score only when it beats the stream's recent peak, so a burst
  yields one detection.
- The output is mapped into [0, 1) by `s / (s + 5)`.

Everything is vectorised across streams: one `update` scores one new point of every stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from kopilot.health import calibration, contexts, streaming, suppression, zscores


class SurpriseMember(Protocol):
    """A member: the newest value of every stream in, a raw surprise (>= 0) per stream out."""

    @property
    def streams(self) -> int: ...

    def surprise(self, values: streaming.FloatArray) -> streaming.FloatArray: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ZScoreSettings:
    window: int = 1000
    smoothing: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextSettings:
    levels: int = 8
    scales: tuple[int, ...] = (4, 32, 256)
    buckets: int = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class EnsembleSettings:
    """One configuration for every stream; the defaults are the ones bench/nab.py reports."""

    zscores: tuple[ZScoreSettings, ...] = (
        ZScoreSettings(window=1000, smoothing=1.0),
        ZScoreSettings(window=3000, smoothing=2.0),
        ZScoreSettings(window=3000, smoothing=4.0),
    )
    contexts: tuple[ContextSettings, ...] = field(default_factory=lambda: (ContextSettings(),))
    combine: Literal["mean", "max"] = "mean"
    calibration_half_life: float | None = 3000.0
    hold: int = 600
    scale: float = 5.0


def members_for(n_streams: int, settings: EnsembleSettings) -> list[SurpriseMember]:
    members: list[SurpriseMember] = [
        zscores.RollingZScore(n_streams, window=z.window, smoothing=z.smoothing)
        for z in settings.zscores
    ]
    members += [
        contexts.ContextNovelty(n_streams, levels=c.levels, scales=c.scales, buckets=c.buckets)
        for c in settings.contexts
    ]
    return members


class Ensemble:
    """Calibrate each member, combine, suppress repeats: one anomaly score per stream per step."""

    def __init__(
        self,
        members: Sequence[SurpriseMember],
        *,
        combine: Literal["mean", "max"] = "mean",
        calibration_half_life: float | None = 3000.0,
        hold: int = 600,
        scale: float = 5.0,
    ) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        n = members[0].streams
        if any(m.streams != n for m in members):
            raise ValueError("all members of an ensemble must watch the same streams")
        self._n = n
        self._members = list(members)
        self._calibrators = [
            calibration.EmpiricalTail(n, half_life=calibration_half_life) for _ in members
        ]
        self._combine = combine
        self._filter = suppression.PeakFilter(n, hold=hold)
        self._scale = scale

    @property
    def streams(self) -> int:
        return self._n

    def calibrated(self, values: streaming.FloatArray) -> streaming.FloatArray:
        """(members, streams) calibrated surprises of the newest values."""
        return np.stack(
            [
                c.update(np.where(np.isnan(values), np.nan, m.surprise(values)))
                for m, c in zip(self._members, self._calibrators, strict=True)
            ]
        )

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        each = self.calibrated(values)
        combined = each.mean(axis=0) if self._combine == "mean" else each.max(axis=0)
        passed = self._filter.update(combined)
        return passed / (passed + self._scale)


def default(n_streams: int, settings: EnsembleSettings | None = None) -> Ensemble:
    """kopilot's detector with its one configuration for all streams."""
    s = settings or EnsembleSettings()
    return Ensemble(
        members_for(n_streams, s),
        combine=s.combine,
        calibration_half_life=s.calibration_half_life,
        hold=s.hold,
        scale=s.scale,
    )


class Single:
    """One member alone, with the same calibration and peak filter as the ensemble (for bench)."""

    def __init__(self, member: SurpriseMember, *, hold: int = 600, scale: float = 5.0) -> None:
        self._inner = Ensemble([member], hold=hold, scale=scale)

    @property
    def streams(self) -> int:
        return self._inner.streams

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        return self._inner.update(values)

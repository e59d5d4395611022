"""The data-quality gate: may a forecaster be trusted with this demand history right now?

Checked over the recent window only (old gaps are interpolated by the forecasters and do no harm):

- no history, or too little to say anything;
- stale: the last sample is older than `stale_steps` sampling steps;
- impossible values: NaN, infinite or negative samples in the recent window;
- gaps: more than `max_gap_fraction` of the expected samples of the recent window are missing;
- a flat line: the recent window holds one and the same non-zero value (a stuck exporter). A
  flat zero is not flagged: an idle service is exactly what scale-to-zero is for.

The verdict is data (`Verdict`), with the reasons a person reads in the action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kopilot.model import series


@dataclass(frozen=True, slots=True, kw_only=True)
class QualitySettings:
    window_steps: int = 30
    stale_steps: float = 3.0
    max_gap_fraction: float = 0.2
    flat_steps: int = 30
    min_samples: int = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...] = ()
    too_short: bool = False
    """The only fault is that the history is too short yet (the samples there are fine)."""

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "ok"


def check(
    history: series.Series | None,
    now: float,
    step: float | None,
    settings: QualitySettings = QualitySettings(),
    *,
    what: str = "demand",
) -> Verdict:
    """The gate's verdict on `history` at `now`, for a series sampled every `step` seconds;
    `what` names the series in the reasons (`demand`, `memory_mib`, ...)."""
    s = settings
    if history is None or len(history) == 0:
        return Verdict(ok=False, reasons=(f"no {what} history",))
    if len(history) < s.min_samples or step is None or not np.isfinite(step) or step <= 0:
        short = len(history) < s.min_samples
        ok_values = bool(np.all(np.isfinite(history.values) & (history.values >= 0)))
        return Verdict(
            ok=False,
            reasons=(f"only {len(history)} {what} samples",),
            too_short=short and ok_values,
        )
    reasons: list[str] = []
    age = now - float(history.times[-1])
    if age > s.stale_steps * step:
        reasons.append(f"stale: last {what} sample is {age:.0f} s old (step {step:.0f} s)")
    window_start = now - s.window_steps * step
    recent = history.since(window_start)
    values = recent.values
    bad = int(np.count_nonzero(~np.isfinite(values) | (values < 0)))
    if bad:
        reasons.append(f"{bad} NaN/infinite/negative value(s) in the last {s.window_steps} samples")
    expected = min(s.window_steps, max(1, int((now - float(history.times[0])) / step)))
    have = int(np.count_nonzero(np.isfinite(values)))
    missing = max(0, expected - have)
    if expected >= 5 and missing > s.max_gap_fraction * expected:
        reasons.append(f"gaps: {missing} of the last {expected} samples missing")
    tail = history.values[-s.flat_steps :]
    if (
        tail.size >= s.flat_steps
        and np.isfinite(tail).all()
        and float(tail[0]) != 0.0
        and bool(np.all(tail == tail[0]))
    ):
        reasons.append(f"flat line: the last {tail.size} samples all equal {float(tail[0]):g}")
    return Verdict(ok=not reasons, reasons=tuple(reasons))

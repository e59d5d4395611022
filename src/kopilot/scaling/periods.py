"""Period detection: is a demand series daily, weekly, or not periodic?

Like Crane's DSP predictor, only the two periods that matter for services are considered: a day
and a week. The series is averaged into hourly buckets and cut to whole weeks (or whole days), and
its circular autocorrelation (via the FFT) is read at the candidate lags:

- daily when the autocorrelation at 24 h is at least `min_acf` and stands above the half-day
  lags around it (a hill, not a slow drift);
- weekly when there are at least two whole weeks, the 168 h lag reaches `min_acf`, and it
  correlates better than the 24 h lag (weekdays differ from weekends).

The thresholds are checked against the labels of Crane's own period test (tests/scaling).
"""

from __future__ import annotations

import enum

import numpy as np

from kopilot.model import series

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY


class Period(enum.Enum):
    NONE = 0.0
    DAY = DAY
    WEEK = WEEK

    @property
    def seconds(self) -> float:
        return float(self.value)

    @property
    def label(self) -> str:
        return self.name.lower()


def hourly(history: series.Series) -> np.ndarray:
    """Hourly means of the finite samples (an hour with no sample takes its neighbours' mean)."""
    ok = np.isfinite(history.values)
    t, v = history.times[ok], history.values[ok]
    if t.size == 0:
        return np.zeros(0)
    idx = ((t - t[0]) // HOUR).astype(np.int64)
    counts = np.bincount(idx)
    sums = np.bincount(idx, weights=v)
    out = np.full(counts.size, np.nan)
    have = counts > 0
    out[have] = sums[have] / counts[have]
    if not have.all():
        hours = np.arange(out.size)
        out[~have] = np.interp(hours[~have], hours[have], out[have])
    return out


def circular_acf(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean()
    spectrum = np.fft.rfft(centred)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), n=x.size)
    if acf[0] <= 0:
        return np.zeros_like(acf)
    return np.asarray(acf / acf[0])


def detect(
    history: series.Series,
    *,
    min_acf: float = 0.5,
    min_hill: float = 0.2,
    week_margin: float = 0.005,
) -> Period:
    """The dominant period of a series: `Period.WEEK`, `Period.DAY` or `Period.NONE`."""
    h = hourly(history)
    if h.size >= 2 * 168:
        n = h.size // 168 * 168
    elif h.size >= 2 * 24:
        n = h.size // 24 * 24
    else:
        return Period.NONE
    acf = circular_acf(h[-n:])
    day = float(acf[24])
    day_hill = day - 0.5 * (float(acf[12]) + float(acf[36]))
    daily = day >= min_acf and day_hill >= min_hill
    if n >= 2 * 168:
        week = float(acf[168])
        if week >= min_acf and week > day + week_margin:
            return Period.WEEK
    return Period.DAY if daily else Period.NONE

"""Seasonal residual: how far the newest value lies from what the stream did one cycle ago.

A daily rise that does not come, a day stuck flat, a peak lower than usual: every value may be
in the stream's usual range and its usual context, yet it differs from the same moment of the
previous cycle. This member learns each stream's cycle online and scores that difference.

- Values are averaged into blocks of `block` points; a ring holds each stream's last `blocks`
  block means (constant memory: `blocks` floats per stream, plus one error per candidate lag).
- For every lag `p` (in blocks) the member keeps an exponentially weighted mean squared difference
  between a block and the block `p` before it. The lag with the smallest error is the stream's
  cycle (lag 1 for a stream without one: the residual is then a change against the last block).
- The residual of a value is its difference from the block at the same phase one cycle ago or two
  cycles ago, whichever is closer: an anomaly one cycle back does not echo as a second anomaly.
- The residual series goes through `zscores.RollingZScore` (smoothed over ~`smoothing` points), so
  a sustained departure from the cycle counts more than one odd point.
"""

from __future__ import annotations

import numpy as np

from kopilot.health import streaming, zscores

_CLIP = 9.0
_MIN_SAMPLES = 16


class SeasonalResidual:
    """Surprise of each value's departure from the stream's own cycle, per stream."""

    def __init__(
        self,
        n_streams: int,
        *,
        block: int = 8,
        blocks: int = 256,
        memory: int = 64,
        window: int = 3000,
        smoothing: float = 16.0,
        gain: float = 0.5,
    ) -> None:
        if block < 1 or blocks < 4:
            raise ValueError(f"need block >= 1 and blocks >= 4, got {block}, {blocks}")
        self._n = n_streams
        self._block = block
        self._blocks = blocks
        self._alpha = 1.0 / memory
        self._ring = np.zeros((n_streams, blocks), dtype=np.float32)
        self._err = np.full((n_streams, blocks // 2), np.inf, dtype=np.float32)
        self._lags = np.arange(1, blocks // 2 + 1, dtype=np.int64)
        self._done = np.zeros(n_streams, dtype=np.int64)  # completed blocks
        self._sum = np.zeros(n_streams)
        self._in_block = np.zeros(n_streams, dtype=np.int64)
        self._cycle = np.ones(n_streams, dtype=np.int64)
        self._cyclic = np.zeros(n_streams, dtype=np.bool_)
        self._gain = gain
        self._rows = np.arange(n_streams)
        self._z = zscores.RollingZScore(n_streams, window=window, smoothing=smoothing)

    @property
    def streams(self) -> int:
        return self._n

    def residuals(self, values: streaming.FloatArray) -> streaming.FloatArray:
        """Each value minus the closer of the blocks one and two cycles back (NaN: no point)."""
        seen = ~np.isnan(values)
        x = np.where(seen, values, 0.0)
        p = self._cycle
        one = self._ring[self._rows, (self._done - p) % self._blocks].astype(np.float64)
        two = self._ring[self._rows, (self._done - 2 * p) % self._blocks].astype(np.float64)
        r1, r2 = x - one, x - two
        r = np.where(self._done >= 2 * p, np.where(np.abs(r1) <= np.abs(r2), r1, r2), r1)
        ready = seen & (self._done >= p)
        self._sum = self._sum + x
        self._in_block = self._in_block + seen
        closing = self._in_block >= self._block
        if closing.any():
            self._close(closing)
        return np.where(seen, np.where(ready, r, 0.0), np.nan)

    def _close(self, closing: streaming.BoolArray) -> None:
        rows = np.flatnonzero(closing)
        mean = self._sum[rows] / self._in_block[rows]
        done = self._done[rows]
        # Squared difference of the new block from the block `lag` before it, for every lag.
        past = self._ring[rows[:, None], (done[:, None] - self._lags[None, :]) % self._blocks]
        diff2 = (mean[:, None] - past) ** 2
        err = self._err[rows]
        valid = done[:, None] >= self._lags[None, :]
        # Seeded with a lag's first difference, then exponentially weighted. (A warm start, a plain
        # average over the first differences, measured worse on the NAB dev subset: 76.7 vs 79.1.)
        samples = done[:, None] - self._lags[None, :]
        a = np.float32(self._alpha)
        fresh = np.isinf(err)
        known = np.where(fresh, 0.0, err)
        # Robust: one odd block (an anomaly) moves a lag's error by at most `_CLIP` times itself.
        clipped = np.where(
            (known > 0) & (samples >= _MIN_SAMPLES), np.minimum(diff2, _CLIP * known), diff2
        )
        updated = np.where(fresh, diff2, known + a * (clipped - known))
        self._err[rows] = np.where(valid, updated, err)
        self._ring[rows, done % self._blocks] = mean
        self._done[rows] = done + 1
        self._sum[rows] = 0.0
        self._in_block[rows] = 0
        err = self._err[rows]
        best = np.argmin(err, axis=1)
        cycle = self._lags[best]
        self._cycle[rows] = cycle
        # A cycle needs two of them behind it, enough differences to trust its error, and to
        # forecast the next block clearly better than the last block does.
        settled = self._done[rows] >= np.maximum(2 * cycle, cycle + _MIN_SAMPLES)
        lag1 = err[:, 0]
        better = err[np.arange(len(rows)), best] < self._gain * lag1
        self._cyclic[rows] = settled & np.isfinite(lag1) & better

    @property
    def cycles(self) -> streaming.IntArray:
        """Each stream's learnt cycle in points (0 while it has none)."""
        return np.where(self._cyclic, self._cycle * self._block, 0)

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        return streaming.surprise_score(-np.nan_to_num(self.surprise(values), nan=0.0))

    def surprise(self, values: streaming.FloatArray) -> streaming.FloatArray:
        """`-log10` of the two-sided tail of the smoothed residual's z-score.

        NaN where the stream has no cycle (yet): the member abstains rather than guess.
        """
        cyclic = self._cyclic.copy()
        # Only residuals against a known cycle teach the z-score what usual departures look like.
        z = self._z.zscores(np.where(cyclic, self.residuals(values), np.nan))
        return np.where(cyclic, streaming.two_sided_surprise(z), np.nan)

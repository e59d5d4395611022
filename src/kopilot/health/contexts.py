"""A contextual detector in the spirit of CAD OSE: how often has this context been seen before?

Each stream's value is scaled into [0, 1] by the range the stream has shown so far and quantised
to `levels` levels. The context of a point is its level together with the levels of exponentially
smoothed averages at a few time scales (recent points, the last tens, the last hundreds): it says
"where the series is now, where it has been lately". Contexts are hashed into `buckets` counters
per stream. A context seen often is normal; one never seen (a new level, a missing daily rise, a
flat stretch where the series always moves) is surprising. The score is the surprise
`-log10 p` of the context under the stream's own counts (add-one smoothed), mapped into [0, 1).

Constant memory per stream: `buckets` counters and a few averages.
"""

from __future__ import annotations

import numpy as np

from kopilot.health import streaming

_PRIMES = np.array([1, 1_000_003, 998_244_353, 2_147_483_647, 1_000_000_007], dtype=np.int64)


class ContextNovelty:
    """Surprise of each point's multi-scale quantised context, per stream."""

    def __init__(
        self,
        n_streams: int,
        *,
        levels: int = 12,
        scales: tuple[int, ...] = (4, 32, 256),
        buckets: int = 1024,
        learning: int = 300,
        scale: float = 5.0,
        max_run_bucket: int = 0,
    ) -> None:
        self._n = n_streams
        self._levels = levels
        self._alphas = np.array([1.0 / s for s in scales])
        self._buckets = buckets
        self._learning = learning
        self._scale = scale
        self._counts = np.zeros((n_streams, buckets), dtype=np.float32)
        self._total = np.zeros(n_streams)
        self._lo = np.full(n_streams, np.inf)
        self._hi = np.full(n_streams, -np.inf)
        self._smooth = np.zeros((len(scales), n_streams))
        self._count = np.zeros(n_streams, dtype=np.int64)
        self._rows = np.arange(n_streams)
        self._max_run_bucket = max_run_bucket
        self._last_level = np.full(n_streams, -1, dtype=np.int64)
        self._run = np.zeros(n_streams)

    @property
    def streams(self) -> int:
        return self._n

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        s = self.surprise(values)
        return s / (s + self._scale)

    def surprise(self, values: streaming.FloatArray) -> streaming.FloatArray:
        """`-log10 p` of each point's context (relative to a uniform context), >= 0."""
        seen = ~np.isnan(values)
        x = np.where(seen, values, 0.0)
        first = seen & (self._count == 0)
        self._lo = np.where(seen, np.minimum(self._lo, x), self._lo)
        self._hi = np.where(seen, np.maximum(self._hi, x), self._hi)
        span = self._hi - self._lo
        unit = np.where(span > 0, (x - self._lo) / np.where(span > 0, span, 1.0), 0.5)
        self._smooth = np.where(first, unit, self._smooth)
        a = self._alphas[:, None]
        self._smooth = np.where(seen, self._smooth + a * (unit - self._smooth), self._smooth)
        top = self._levels - 1
        q_now = np.clip(np.rint(unit * top), 0, top).astype(np.int64)
        q_avg = np.clip(np.rint(self._smooth * top), 0, top).astype(np.int64)
        key = q_now * _PRIMES[0]
        for i in range(q_avg.shape[0]):
            key = key + (q_avg[i] + 1) * _PRIMES[1 + i % 4]
        if self._max_run_bucket:
            same = q_now == self._last_level
            self._run = np.where(seen, np.where(same, self._run + 1, 0.0), self._run)
            self._last_level = np.where(seen, q_now, self._last_level)
            run_bucket = np.minimum(np.floor(np.log2(self._run + 1)), self._max_run_bucket)
            key = key + (run_bucket.astype(np.int64) + 1) * 7919 * 104729
        bucket = (key % self._buckets).astype(np.int64)
        count = self._counts[self._rows, bucket].astype(np.float64)
        p = (count + 1.0) / (self._total + self._buckets)
        # 0 when the context is as common as it would be if all contexts were equally likely.
        surprise = np.maximum(-np.log10(p) - np.log10(self._buckets), 0.0)
        ready = seen & (self._count >= self._learning)
        score = np.where(ready, surprise, 0.0)
        self._counts[self._rows, bucket] += seen.astype(np.float32)
        self._total = self._total + seen
        self._count = self._count + seen
        return score

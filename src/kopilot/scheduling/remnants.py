"""Remnants: the GPU capacity a share leaves behind that later shares will not fill.

A share of m milli on a GPU with f free leaves a hole of f - m. Whether that hole is lost depends
on what arrives later. FGD's fragmentation counts the hole as lost for every task shape that is
bigger, weighted by popularity; it does not see that a 530-milli hole beside a 470-milli share is
filled by the next 470 (60 left for good), while a 210-milli hole beside 470 + 320 waits for a
share of 210 or less that almost never comes.

`least(sizes)[f]` is the smallest remnant a hole of f can end with when filled by any number of
shares of the given sizes (an unbounded subset sum). Only *reliable fillers* count
(`fillers`): a size is one when the workload brings it at least as often as the other shares whose
own hole it is the largest filler for. On the openb default trace 160-milli shares arrive at 1/20
the rate of the 810-milli shares whose 190-milli hole only they fit, so a 190-milli hole counts as
lost, not as filled by a 160.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from kopilot.model import resources

FloatArray = npt.NDArray[np.float64]


def fillers(popularity: Mapping[int, float]) -> tuple[int, ...]:
    """The reliable filler sizes among single-GPU task sizes (milli -> popularity).

    Size m is the largest filler of holes from m up to the next larger size; it is reliable when
    its popularity is at least that of the other sizes whose hole (1000 - size) lands there.
    A size's own hole does not count: two 470s fill one GPU, one leaving the hole, one filling it.
    """
    sizes = sorted(m for m, p in popularity.items() if 0 < m <= resources.GPU_MILLI and p > 0)
    out: list[int] = []
    for i, m in enumerate(sizes):
        upper = sizes[i + 1] if i + 1 < len(sizes) else resources.GPU_MILLI + 1
        holes = sum(
            p
            for s, p in popularity.items()
            if s != m and m <= resources.GPU_MILLI - s < upper and s in sizes
        )
        if popularity[m] >= holes:
            out.append(m)
    return tuple(out)


def least(sizes: Iterable[int]) -> FloatArray:
    """R[f] for f = 0..1000: the least remnant of a hole of f filled by shares of these sizes."""
    usable = sorted({m for m in sizes if 0 < m <= resources.GPU_MILLI})
    out = np.arange(resources.GPU_MILLI + 1, dtype=np.float64)
    for f in range(1, resources.GPU_MILLI + 1):
        for m in usable:
            if m > f:
                break
            out[f] = min(out[f], out[f - m])
    return out

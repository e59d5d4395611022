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

A filler only fills a hole on a node that can still host it: `Lasting` sums, over a node's partly
used GPUs, the least remnant that the fillers the node's free CPU, memory and GPU model admit leave.
A 530-milli hole beside a 470 on a node whose last 8 vCPU went to the 470 lasts as 530, not 60.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from kopilot.model import resources

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


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


class Lasting:
    """Per node, the sum of the lasting remnants of its partly used GPUs, given which filler sizes
    the node can host. A table of `least` is built for each subset of hosted sizes on first use."""

    def __init__(self, sizes: Sequence[int], shape_milli: Sequence[int] | IntArray) -> None:
        """`sizes`: the filler sizes (`fillers`); `shape_milli`: per task shape of the workload,
        its milli-GPU on its one GPU (0 for a shape that does not take exactly one GPU)."""
        self.sizes = tuple(sizes)
        milli = np.asarray(shape_milli, dtype=np.int64)
        self._member: IntArray = (milli[:, None] == np.array(self.sizes, dtype=np.int64)).astype(
            np.int64
        )
        """Task shape x filler size: 1 where the shape is of that size."""
        self._bits: IntArray | None = (
            np.left_shift(1, np.arange(len(self.sizes), dtype=np.int64))
            if len(self.sizes) < 63
            else None
        )
        self._rows: dict[bytes, int] = {}
        self.tables: FloatArray = np.zeros((0, resources.GPU_MILLI + 1), dtype=np.float64)
        """One row per subset of hosted sizes met so far: its `least`, 0 for an idle GPU."""

    def of(self, usable: BoolArray, free: IntArray) -> FloatArray:
        """The lasting remnant of each node (row): `usable` (node x task shape) says which shapes
        the node can host, `free` (node x GPU) the free milli of its GPUs (0 for no GPU)."""
        hosted = (usable.astype(np.int64) @ self._member) > 0
        rows = self._table_rows(hosted)
        out: FloatArray = self.tables[rows[:, None], free].sum(axis=1)
        return out

    def _table_rows(self, hosted: BoolArray) -> IntArray:
        if self._bits is not None:  # one integer per subset: a cheap 1-D unique
            _, first, inverse = np.unique(
                hosted.astype(np.int64) @ self._bits, return_index=True, return_inverse=True
            )
            keys = hosted[first]
        else:
            keys, inverse = np.unique(hosted, axis=0, return_inverse=True)
        index = np.array([self._row(key) for key in keys], dtype=np.int64)
        out: IntArray = index[inverse.reshape(-1)]
        return out

    def _row(self, hosted: BoolArray) -> int:
        key = np.packbits(hosted).tobytes()
        row = self._rows.get(key)
        if row is None:
            table = least(m for m, ok in zip(self.sizes, hosted, strict=True) if ok)
            table[resources.GPU_MILLI] = 0.0  # an idle GPU is no hole (stranding sees it)
            self.tables = np.vstack([self.tables, table[None, :]])
            row = self.tables.shape[0] - 1
            self._rows[key] = row
        return row

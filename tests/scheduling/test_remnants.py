"""Remnants: which sizes fill holes reliably, and what a hole ends as."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kopilot.scheduling import remnants


def test_a_size_far_rarer_than_the_shares_whose_hole_it_fits_is_no_filler() -> None:
    # 810-milli shares leave 190; 160s fit there but come 20 times less often.
    popularity = {1000: 0.5, 810: 0.13, 470: 0.09, 320: 0.04, 160: 0.0065}
    assert remnants.fillers(popularity) == (320, 470, 810, 1000)


def test_a_size_that_pairs_with_itself_is_a_filler() -> None:
    # Every 470 leaves a 530 hole that only 470s fill: one of two leaves it, the other fills it.
    assert remnants.fillers({470: 0.5, 1000: 0.5}) == (470, 1000)


def test_least_remnant_is_the_best_subset_sum_of_the_fillers() -> None:
    table = remnants.least((320, 470, 1000))
    assert table[1000] == 0.0
    assert table[530] == 60.0  # one 470
    assert table[680] == 40.0  # two 320s
    assert table[210] == 210.0  # nothing fits
    assert table[790] == 0.0  # 470 + 320


@given(st.lists(st.integers(min_value=1, max_value=1000), max_size=6), st.integers(0, 1000))
def test_least_remnant_is_between_zero_and_the_hole(sizes: list[int], free: int) -> None:
    table = remnants.least(sizes)
    assert 0.0 <= table[free] <= free
    if free and sizes and min(sizes) > free:
        assert table[free] == pytest.approx(free)


def test_a_hole_lasts_as_what_the_fillers_the_node_can_host_leave() -> None:
    # shapes: a whole GPU, a 470 share, a 320 share, a CPU-only pod
    lasting = remnants.Lasting((320, 470, 1000), shape_milli=[1000, 470, 320, 0])
    free = np.array([[530, 1000, 0], [530, 1000, 0]], dtype=np.int64)
    usable = np.array([[True, True, True, True], [True, False, True, True]])
    # a 470 fills the 530 hole to 60; without it, a 320 leaves 210. The idle GPU is no hole.
    assert lasting.of(usable, free).tolist() == [60.0, 210.0]
    nothing = np.zeros((1, 4), dtype=np.bool_)
    assert lasting.of(nothing, free[:1]).tolist() == [530.0]


@given(
    st.lists(st.integers(0, 1000), min_size=1, max_size=8),
    st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_lasting_is_the_least_remnant_of_the_hosted_sizes_summed_over_partly_used_gpus(
    free: list[int], hosted: list[bool]
) -> None:
    sizes = (230, 470, 1000)
    lasting = remnants.Lasting(sizes, shape_milli=[1000, 470, 230, 470])
    usable = np.array([[hosted[2], hosted[1], hosted[0], False]])
    table = remnants.least(m for m, ok in zip(sizes, hosted, strict=True) if ok)
    want = sum(table[f] for f in free if f < 1000)
    assert lasting.of(usable, np.array([free], dtype=np.int64))[0] == pytest.approx(want)

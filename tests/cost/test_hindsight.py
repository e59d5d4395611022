"""replay.hindsight_bound: no set of static levels beats it at the same over-interval count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kopilot.cost import replay, rightsizing
from kopilot.model import series

values = st.lists(st.floats(0.0, 4.0, allow_nan=False), min_size=2, max_size=30)


def _series(v: list[float]) -> series.Series:
    return series.Series.of(np.arange(len(v)) * 60.0, np.asarray(v))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(values, st.floats(0.0, 1.0)), min_size=1, max_size=5))
def test_no_static_levels_beat_the_bound_with_as_few_over_intervals(
    cases: list[tuple[list[float], float]],
) -> None:
    usages = [_series(v) for v, _ in cases]
    # Any static level per series (here: one of its quantiles) is a feasible hindsight choice.
    outs = [
        replay.replay(rightsizing.Level(value=float(np.quantile(v, q))), u)
        for (v, q), u in zip(cases, usages, strict=True)
    ]
    over = sum(o.over_intervals for o in outs)
    bound = replay.hindsight_bound(usages, max_over_intervals=over)
    assert bound.over_intervals <= over
    assert bound.waste_hours <= sum(o.waste_hours for o in outs) + 1e-9


def test_bound_trades_waste_for_over_intervals_on_a_hand_example() -> None:
    # One spike to 1.0 in ten minutes at 0.1: holding 1.0 wastes 9 x 0.9 min; holding 0.1 wastes
    # nothing and is over once.
    usage = _series([0.1] * 5 + [1.0] + [0.1] * 4)
    strict = replay.hindsight_bound([usage], max_over_intervals=0)
    assert strict.over_intervals == 0
    assert strict.waste_hours == pytest.approx(9 * 0.9 / 60.0)
    loose = replay.hindsight_bound([usage], max_over_intervals=1)
    assert loose.over_intervals == 1
    assert loose.waste_hours == pytest.approx(0.0)

"""Period detection against the labels of Crane's own DSP test (TestSignal_FindPeriod)."""

from __future__ import annotations

import numpy as np
import pytest

from kopilot.model import series
from kopilot.scaling import periods
from kopilot.traces import demand
from tests.paths import TRACES

CRANE = TRACES / "crane-dsp-testdata"  # at 15-minute steps, input10 at 60 s (SOURCE.txt)

# From crane-dsp-testdata/SOURCE.txt. input3 is labelled non-periodic in Crane's test with a
# "//true" comment next to it (its authors think it is periodic): either answer is accepted.
LABELS: dict[int, set[periods.Period]] = {
    0: {periods.Period.DAY},
    1: {periods.Period.DAY},
    2: {periods.Period.WEEK},
    3: {periods.Period.NONE, periods.Period.WEEK, periods.Period.DAY},
    4: {periods.Period.NONE},
    5: {periods.Period.NONE},
    6: {periods.Period.NONE},
    7: {periods.Period.NONE},
    8: {periods.Period.WEEK},
    9: {periods.Period.DAY},
    10: {periods.Period.WEEK},
    11: {periods.Period.DAY},
    12: {periods.Period.WEEK},
    13: {periods.Period.WEEK},
    14: {periods.Period.WEEK},
    15: {periods.Period.WEEK},
}


@pytest.mark.parametrize("index", sorted(LABELS))
def test_crane_series_period_matches_label(index: int) -> None:
    trace = demand.load_crane(CRANE / f"input{index}.csv")
    found = periods.detect(trace.demand)
    assert found in LABELS[index], f"input{index}: detected {found.label}"


def _synthetic(days: int, step: float, shape: str, seed: int = 1) -> series.Series:
    rng = np.random.default_rng(seed)
    t = np.arange(0, days * periods.DAY, step)
    day = np.sin(2 * np.pi * t / periods.DAY)
    weekend = ((t // periods.DAY) % 7 >= 5).astype(float)
    if shape == "day":
        v = 100 + 40 * day + rng.normal(0, 5, t.size)
    elif shape == "week":
        v = 100 + 10 * day - 60 * weekend + rng.normal(0, 5, t.size)
    else:
        v = 100 + np.cumsum(rng.normal(0, 1, t.size)) * 0.1 + rng.normal(0, 5, t.size)
    return series.Series.of(t, np.maximum(v, 0))


@pytest.mark.parametrize(
    ("shape", "expected"),
    [("day", periods.Period.DAY), ("week", periods.Period.WEEK), ("none", periods.Period.NONE)],
)
def test_synthetic_shapes(shape: str, expected: periods.Period) -> None:
    assert periods.detect(_synthetic(21, 300.0, shape)) is expected


def test_too_short_history_has_no_period() -> None:
    assert periods.detect(_synthetic(1, 60.0, "day")) is periods.Period.NONE

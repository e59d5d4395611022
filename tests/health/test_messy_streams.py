"""Real metric streams are messy: the NAB loader and the detector take them, never exit on them.

Each case is a small synthetic stream: timestamps that step back, repeat or jump; values that are
missing, not numbers or infinite; constant stretches; a counter that restarts from zero.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kopilot.health import ensembles, nab_corpus, nab_scoring, streaming
from kopilot.model import errors

HOUR = np.timedelta64(3600, "s")


def write_stream(root: Path, rows: list[tuple[str, str]], windows: list[list[str]]) -> Path:
    """A NAB-layout folder with one file, `cat/s.csv`, and its labels; returns the labels path."""
    (root / "data" / "cat").mkdir(parents=True)
    lines = ["timestamp,value", *(f"{t},{v}" for t, v in rows)]
    (root / "data" / "cat" / "s.csv").write_text("\n".join(lines) + "\n")
    labels = root / "windows.json"
    labels.write_text(json.dumps({"cat/s.csv": windows}))
    return labels


def hourly(n: int, start: str = "2015-10-20 00:00:00") -> list[str]:
    t0 = np.datetime64(start.replace(" ", "T"), "s")
    return [str(t0 + i * HOUR).replace("T", " ") for i in range(n)]


def test_a_timestamp_stepping_back_is_noted_with_file_and_line_and_the_rows_kept(
    tmp_path: Path,
) -> None:
    # A clock change: ..., 03:00, 04:00, then 03:00 again (one hour back), as in a DST switch.
    stamps = hourly(200)
    stamps = [*stamps[:101], *stamps[99:198]]
    values = [str(float(i)) for i in range(200)]
    labels = write_stream(
        tmp_path, list(zip(stamps, values, strict=True)), [[stamps[150], stamps[160]]]
    )

    corpus = nab_corpus.load(tmp_path / "data", labels)

    (series,) = corpus.series
    assert len(series.timestamps) == 200
    assert np.all(series.timestamps[1:] >= series.timestamps[:-1])
    np.testing.assert_array_equal(corpus.values[0], np.arange(200.0))  # arrival order
    (note,) = corpus.notes
    assert "cat/s.csv:103" in note and "steps back" in note
    # It scores like any series: the window is found in the monotone clock.
    score = nab_scoring.score_corpus(corpus.series, [np.zeros(200)], nab_scoring.PROFILES[0])
    assert score.per_series[0].windows == 1


def test_repeated_timestamps_and_gaps_are_kept_without_notes(tmp_path: Path) -> None:
    stamps = hourly(300)
    stamps[50] = stamps[49]  # a repeat
    stamps = [
        *stamps[:200],
        *(
            str(np.datetime64(s.replace(" ", "T")) + 24 * HOUR).replace("T", " ")
            for s in stamps[200:]
        ),
    ]
    labels = write_stream(tmp_path, [(t, "1.0") for t in stamps], [])

    corpus = nab_corpus.load(tmp_path / "data", labels)

    assert len(corpus.values[0]) == 300
    assert corpus.notes == ()


@pytest.mark.parametrize("bad", ["", "nan", "NaN", "inf", "-inf", "n/a"])
def test_a_value_that_is_not_a_finite_number_is_a_missing_point_noted(
    tmp_path: Path, bad: str
) -> None:
    stamps = hourly(50)
    values = ["1.0"] * 50
    values[20] = bad
    labels = write_stream(tmp_path, list(zip(stamps, values, strict=True)), [])

    corpus = nab_corpus.load(tmp_path / "data", labels)

    v = corpus.values[0]
    assert np.isnan(v[20]) and np.isfinite(np.delete(v, 20)).all()
    (note,) = corpus.notes
    assert "cat/s.csv:22" in note


def test_an_unreadable_timestamp_keeps_the_previous_time_and_is_noted(tmp_path: Path) -> None:
    stamps = hourly(50)
    stamps[10] = "yesterday"
    labels = write_stream(tmp_path, [(t, "1.0") for t in stamps], [])

    corpus = nab_corpus.load(tmp_path / "data", labels)

    ts = corpus.series[0].timestamps
    assert ts[10] == ts[9]
    (note,) = corpus.notes
    assert "cat/s.csv:12" in note


def test_a_file_without_the_header_is_one_clear_error(tmp_path: Path) -> None:
    labels = write_stream(tmp_path, [], [])
    (tmp_path / "data" / "cat" / "s.csv").write_text("time,v\n")
    with pytest.raises(errors.InvalidInputError, match=r"s\.csv:1: expected the header"):
        nab_corpus.load(tmp_path / "data", labels)


def test_a_constant_stretch_does_not_blind_the_detector_to_what_follows() -> None:
    # Eight streams: noise, then an exporter stuck on one value for 1000 points, then noise
    # again with a clear spike 500 points later. Some streams' seasonal member learns a "cycle"
    # of zero error on the flat part; what follows must not score so high that it hides the spike.
    columns = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        noise = 10.0 + rng.normal(0, 1, 1000)
        tail = 10.0 + rng.normal(0, 1, 600)
        tail[500] += 12.0
        columns.append(np.r_[noise, np.full(1000, 10.0), tail])
    scores = streaming.run(ensembles.default(8), np.stack(columns, axis=1))

    assert np.all(scores < 0.9)
    # Every stream detects something after the flat part (the spike or noise before it); a
    # score of ~1e12 would have held the peak filter shut for ~12,000 points.
    assert np.all(scores[2100:].max(axis=0) > 0.0)
    assert np.count_nonzero(scores[2500] > 0.0) >= 6


def test_missing_points_are_skipped_and_score_zero() -> None:
    rng = np.random.default_rng(4)
    values = 10.0 + rng.normal(0, 1, 1500)
    values[400:700] = np.nan
    values[900] = np.inf
    scores = streaming.run(ensembles.default(1), values[:, None])[:, 0]

    assert np.isfinite(scores).all()
    assert np.all(scores[400:700] == 0.0) and scores[900] == 0.0


def test_a_counter_that_restarts_from_zero_is_flagged_once() -> None:
    rng = np.random.default_rng(5)
    counter = np.cumsum(1.0 + rng.uniform(0, 0.2, 2000))
    counter[1500:] -= counter[1499]  # the process restarted: the counter starts again at ~0
    scores = streaming.run(ensembles.default(1), counter[:, None])[:, 0]

    after = scores[1500:1600]
    assert np.isfinite(scores).all()
    assert after.max() > 0.0
    assert np.count_nonzero(after) == 1

"""The GenAI trace loaders sum per-container rates and reject bad rows with file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kopilot.traces import csvs, genai
from tests.paths import TRACES

SAMPLE = TRACES / "alibaba-gentd26"


def test_rates_are_summed_per_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "qps.csv"
    path.write_text(
        "timestamp_anon,value,container_ip,request_type\n"
        "10.0,0.5,a,Generative Requests\n10.0,0.25,b,API Requests\n20.0,1.0,a,Generative Requests\n"
    )
    s = genai.load_qps(path)
    assert list(s.times) == [10.0, 20.0]
    assert list(s.values) == [0.75, 1.0]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("timestamp_anon,value\n1,abc\n", "line 2: value='abc' is not a number"),
        ("timestamp_anon,value\n1,nan\n", "line 2: value='nan' is not a finite number"),
        ("timestamp_anon,value\n1,-3\n", "line 2: value=-3 is below 0"),
        ("timestamp_anon,val\n1,3\n", "line 1: missing column(s) ['value']"),
        ("timestamp_anon,value\n1,2,3\n", "line 2: more fields than the header"),
        ("timestamp_anon,value\n", "no data rows"),
    ],
)
def test_bad_rows_name_file_line_and_reason(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "qps.csv"
    path.write_text(body)
    with pytest.raises(csvs.TraceError) as e:
        genai.load_qps(path)
    assert str(path) in str(e.value) and problem in str(e.value)


def test_real_trace_matches_its_documented_shape() -> None:
    # tests/data/traces/SOURCE.txt: 579 rows over the first 60 timestamps (57 s steps, 1.05 h)
    s = genai.load_qps(SAMPLE / "qps.csv")
    assert len(s) == 60
    assert float(np.diff(s.times).min()) == 57.0
    assert (s.times[-1] - s.times[0]) / 3600 == pytest.approx(1.045, abs=0.01)
    cold = genai.load_cold_starts(SAMPLE / "basemodel_update_latency_anon.csv")
    assert len(cold) == 1500
    assert float(cold.max()) == pytest.approx(57.2, abs=0.1)

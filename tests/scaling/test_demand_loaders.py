"""Demand loaders: real files parse into rates; bad rows fail with file, line and reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kopilot.model import errors
from kopilot.traces import demand
from tests.paths import TRACES

DATA = TRACES  # tests/data/traces: samples, SOURCE.txt says which rows


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_alibaba_qps_is_summed_per_timestamp(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "qps.csv",
        "timestamp_anon,value,container_ip,request_type\n"
        "100.0,1.5,a,Generative Requests\n100.0,2.0,b,Generative Requests\n"
        "157.0,0.5,,API Requests\n214.0,1.0,a,Generative Requests\n",
    )
    trace = demand.load_alibaba_qps(p)
    assert trace.step_s == 57.0
    assert trace.demand.values.tolist() == [3.5, 0.5, 1.0]


def test_azure_requests_become_rates(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "azure.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,10,1\n2023-11-16 18:17:04.0319600,10,1\n"
        "2023-11-16 18:17:20.5000000,10,1\n",
    )
    trace = demand.load_azure_llm(p, step_s=15.0)
    assert trace.demand.values.tolist() == [2 / 15, 1 / 15]
    assert trace.demand.times[1] - trace.demand.times[0] == 15.0


def test_nab_counts_per_bucket_become_rates_and_keep_gaps(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "nab.csv",
        "timestamp,value\n2014-04-10 00:00:00,300\n2014-04-10 00:05:00,600\n"
        "2014-04-10 00:15:00,30\n",
    )
    trace = demand.load_nab(p)
    assert trace.step_s == 300.0
    assert trace.demand.values.tolist() == [1.0, 2.0, 0.1]
    assert len(trace.demand) == 3  # the missing 00:10 sample stays missing


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("ts,value\n1,2\n2,abc\n", "line 3: value='abc' is not a number"),
        ("ts,value\n1,2\n2,nan\n", "line 3: value='nan' is not a finite number"),
        ("ts,value\n1,2\n2,-4\n", "line 3: value=-4 is below 0"),
        ("ts,value\n1,2\n2,3,4\n", "line 3: more fields than the header"),
        (
            "time,v\n1,2\n",
            "line 1: missing column(s) ['ts', 'value']; the header has ['time', 'v']",
        ),
        ("ts,value\n5,2\n4,3\n", "not after the one before it"),
    ],
)
def test_bad_rows_name_file_line_and_reason(tmp_path: Path, body: str, needle: str) -> None:
    p = _write(tmp_path, "bad.csv", body)
    with pytest.raises(errors.InvalidInputError) as err:
        demand.load_crane(p)
    assert str(p) in str(err.value)
    assert needle in str(err.value)


def test_bad_timestamp_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "bad.csv", "timestamp,value\n2014-04-10 00:00:00,3\nyesterday,4\n")
    with pytest.raises(
        errors.InvalidInputError, match=r"bad.csv, line 3: timestamp='yesterday' is not a"
    ):
        demand.load_nab(p)


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    p = _write(tmp_path, "x.csv", "a,b\n1,2\n")
    with pytest.raises(errors.InvalidInputError, match="not a known demand format"):
        demand.load_demand(p)


def test_real_series_load() -> None:
    qps = demand.load_alibaba_qps(DATA / "alibaba-gentd26/qps.csv")
    assert len(qps.demand) == 60 and qps.step_s == 57.0
    taxi = demand.load_demand(DATA / "nab/nyc_taxi.csv")
    assert taxi.step_s == 1800.0 and len(taxi.demand) == 2016
    assert np.isclose(taxi.demand.values.max(), 29985 / 1800)
    elb = demand.load_demand(DATA / "nab/elb_request_count_8c0756.csv")
    assert elb.step_s == 300.0 and len(elb.demand) == 4032
    cold = demand.load_cold_starts(DATA / "alibaba-gentd26/basemodel_update_latency_anon.csv")
    assert cold.size == 1500
    assert 20 < float(np.median(cold)) < 25  # SOURCE.txt: p50 23.5 s in the sample

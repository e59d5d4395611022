"""Idle GPUs in the real Alibaba GenTD26 duty-cycle trace are found and priced."""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pytest

from kopilot.cost import idle, prices, usage
from kopilot.model import series
from tests.paths import TRACES

# Every row of three containers of the GenTD26 duty-cycle trace (tests/data/traces/SOURCE.txt).
TRACE = TRACES / "alibaba-gentd26" / "pod_gpu_duty_cycle_anon.csv"


def _containers() -> list[usage.ContainerUsage]:
    rows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with TRACE.open() as f:
        for row in csv.DictReader(f):
            rows[row["container_ip"]].append((float(row["timestamp_anon"]), float(row["value"])))
    out = []
    for pod, samples in sorted(rows.items()):
        samples.sort()
        t = np.array([s[0] for s in samples])
        v = np.array([s[1] for s in samples]) / 100.0
        out.append(
            usage.ContainerUsage(
                namespace="gentd26",
                pod=pod,
                container="sd",
                workload="sd",
                gpu_busy=series.Series.of(t, v),
                gpus=1.0,
            )
        )
    return out


def test_idle_gpus_in_the_alibaba_trace_are_found_and_priced() -> None:
    containers = _containers()
    found = idle.idle_gpus(containers, prices.PriceBook(), threshold=0.05, min_idle_s=3600)
    by_pod = {g.pod: g for g in found}
    # 673d3687... never reaches 7 % busy in ~23 h: idle (< 5 %) for more than 90 % of it.
    quiet = by_pod["673d36875994141502007792b4b4588c"]
    assert 0.9 * quiet.observed_hours < quiet.idle_hours <= quiet.observed_hours
    assert quiet.cost == pytest.approx(quiet.idle_hours * 0.95)
    assert quiet.max_busy < 0.07
    # every finding is a run of at least an hour and is priced at the GPU price
    assert all(g.idle_hours >= 1.0 and g.cost == pytest.approx(g.idle_hours * 0.95) for g in found)
    # 07ff74... is busy all day; e02e18... has one quiet stretch of more than an hour
    assert set(by_pod) == {"673d36875994141502007792b4b4588c", "e02e18dca6eef690db7e3911f7c82f70"}
    alerts = idle.idle_gpu_alerts(found, threshold=0.05)
    assert alerts[0].evidence["cost"] == round(found[0].cost, 2)
    assert "below 5%" in alerts[0].reason


def test_a_busy_gpu_is_not_idle_and_a_short_lull_does_not_count() -> None:
    t = np.arange(0, 4 * 3600, 60.0)
    busy = np.where((t >= 3600) & (t < 3600 + 1800), 0.0, 0.5)  # a 30-minute lull
    c = usage.ContainerUsage(
        namespace="n",
        pod="p",
        container="c",
        workload="w",
        gpu_busy=series.Series.of(t, busy),
        gpus=1.0,
    )
    assert idle.idle_gpus([c], prices.PriceBook(), min_idle_s=3600) == []


def test_scale_to_zero_needs_cpu_and_gpu_quiet() -> None:
    t = np.arange(0, 3 * 3600, 60.0)
    quiet = usage.ContainerUsage(
        namespace="n",
        pod="a",
        container="c",
        workload="q",
        cpu=series.Series.of(t, np.full(len(t), 0.001)),
    )
    busy = usage.ContainerUsage(
        namespace="n",
        pod="b",
        container="c",
        workload="b",
        cpu=series.Series.of(t, np.full(len(t), 0.3)),
    )
    found = idle.scale_to_zero([quiet, busy])
    assert [z.workload for z in found] == ["n/q"]

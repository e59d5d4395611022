"""Cost attribution against a hand-computed example, to the cent."""

from __future__ import annotations

import pytest

from kopilot.cost import attribution, prices, usage
from kopilot.model import resources, series

GIB = 1024.0**3
H = 3600.0


def _c(
    pod: str,
    *,
    cpu: series.Series,
    req_cpu: float,
    mem: float,
    req_mem: float,
    gpus: float = 0.0,
    busy: float | None = None,
    node: str = "n1",
    app: str = "a",
    workload: str = "w",
) -> usage.ContainerUsage:
    end = 10 * H
    return usage.ContainerUsage(
        namespace="ns",
        pod=pod,
        container="c",
        workload=workload,
        node=node,
        labels={"app": app},
        cpu=cpu,
        memory=usage.constant(mem, start=0, end=end),
        cpu_request=usage.constant(req_cpu, start=0, end=end),
        memory_request=usage.constant(req_mem, start=0, end=end),
        gpu_busy=usage.constant(busy, start=0, end=end)
        if busy is not None
        else series.Series.empty(),
        gpus=gpus,
    )


def test_hand_computed_example_to_the_cent() -> None:
    """Pod p1, 10 h, default OpenCost prices:
    CPU: request 1 core; usage 0.5 core for 6 h, then 2 cores for 4 h -> max = 1x6 + 2x4 = 14
         core-h x 0.031611 = 0.442554
    RAM: request 2 GiB, usage 3 GiB all along -> 3 x 10 = 30 GiB-h x 0.004237 = 0.12711
    GPU: a 250-milli share -> 0.25 x 10 = 2.5 GPU-h x 0.95 = 2.375
    total 2.944664 -> $2.94; waste: CPU (1-0.5) x 6 = 3 core-h = 0.094833, RAM 0, GPU busy 40 %
    -> 0.6 x 2.5 = 1.5 GPU-h = 1.425; waste total 1.519833 -> $1.52.
    """
    cpu = series.Series.of([i * 60.0 for i in range(600)], [0.5] * 360 + [2.0] * 240)
    c = _c(
        "p1",
        cpu=cpu,
        req_cpu=1.0,
        mem=3 * GIB,
        req_mem=2 * GIB,
        gpus=prices.gpu_share(resources.Resources(gpu_milli=250)),
        busy=0.4,
    )
    a = attribution.allocate(c, usage.Window(start=0, end=10 * H, step=60), prices.PriceBook())
    assert a.cost.cpu_core_hours == pytest.approx(14.0)
    assert a.cost.ram_gib_hours == pytest.approx(30.0)
    assert a.cost.gpu_hours == pytest.approx(2.5)
    assert round(a.cost.cpu_cost, 2) == 0.44
    assert round(a.cost.ram_cost, 2) == 0.13
    assert round(a.cost.gpu_cost, 2) == 2.38
    assert round(a.cost.total, 2) == 2.94
    assert a.cost.waste == pytest.approx(0.094833 + 1.425)
    assert round(a.cost.waste, 2) == 1.52


def test_rollups_and_cluster_idle_cost() -> None:
    window = usage.Window(start=0, end=10 * H, step=60)
    flat = usage.constant(0.5, start=0, end=10 * H)
    a = attribution.allocate(
        _c("p1", cpu=flat, req_cpu=1, mem=GIB, req_mem=GIB, app="x"), window, prices.PriceBook()
    )
    b = attribution.allocate(
        _c("p2", cpu=flat, req_cpu=3, mem=GIB, req_mem=GIB, app="y", workload="v"),
        window,
        prices.PriceBook(),
    )
    by_label = attribution.aggregate([a, b], "label:app")
    assert list(by_label) == ["app=y", "app=x"]  # most expensive first
    assert by_label["app=y"].cpu_core_hours == pytest.approx(30.0)
    assert attribution.aggregate([a, b], "namespace")["ns"].cpu_core_hours == pytest.approx(40.0)
    assert set(attribution.aggregate([a, b], "workload")) == {"ns/w", "ns/v"}
    node = attribution.NodeCapacity(name="n1", cpu_cores=8, memory_bytes=16 * GIB, gpus=1)
    idle = attribution.idle([node], [a, b], window, prices.PriceBook())["n1"]
    # 8 cores x 10 h - 40 = 40 core-h; 16 GiB x 10 h - 20 = 140 GiB-h; 1 GPU x 10 h = 10 GPU-h.
    assert idle.cpu_core_hours == pytest.approx(40.0)
    assert idle.ram_gib_hours == pytest.approx(140.0)
    assert round(idle.total, 2) == round(40 * 0.031611 + 140 * 0.004237 + 10 * 0.95, 2) == 11.36


def test_bad_grouping_is_refused() -> None:
    window = usage.Window(start=0, end=H, step=60)
    a = attribution.allocate(
        _c("p", cpu=series.Series.empty(), req_cpu=1, mem=0, req_mem=0), window, prices.PriceBook()
    )
    with pytest.raises(Exception, match="label:<name>"):
        attribution.aggregate([a], "colour")

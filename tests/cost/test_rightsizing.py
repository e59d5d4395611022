from __future__ import annotations

import numpy as np
import pytest

from kopilot.cost import replay, rightsizing
from kopilot.model import series

DAY = 86400.0


def _daily(days: int, step: float = 300.0) -> series.Series:
    t = np.arange(0, days * DAY, step)
    rng = np.random.default_rng(7)
    v = 1.0 + 0.8 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 0.05, len(t))
    return series.Series.of(t, np.clip(v, 0.01, None))


def test_krr_simple_is_p95_and_max_plus_15_percent() -> None:
    t = np.arange(200) * 60.0
    cpu = series.Series.of(t, np.arange(200) / 100.0)
    mem = series.Series.of(t, np.full(200, 1e9))
    rec = rightsizing.KrrSimple().recommend(
        rightsizing.History(subject="n/w/c", cpu=(cpu,), memory=(mem,))
    )
    assert rec.cpu is not None and rec.memory is not None
    assert rec.cpu.value == pytest.approx(np.percentile(np.arange(200) / 100.0, 95))
    assert rec.memory.value == pytest.approx(1.15e9)


def test_too_few_points_gives_no_number_and_says_why() -> None:
    short = series.Series.of([0.0, 60.0], [0.5, 0.6])
    for strategy in (rightsizing.KrrSimple(), rightsizing.Kopilot()):
        rec = strategy.recommend(
            rightsizing.History(subject="n/w/c", cpu=(short,), memory=(short,))
        )
        assert rec.cpu is None and rec.memory is None
        assert any("2 samples" in n for n in rec.notes)


def test_vpa_target_is_p90_plus_margin_with_minimums() -> None:
    t = np.arange(1000) * 60.0
    cpu = series.Series.of(t, np.full(1000, 0.5))
    mem = series.Series.of(t, np.full(1000, 1e6))
    rec = rightsizing.VpaRecommender().recommend(
        rightsizing.History(subject="n/w/c", cpu=(cpu,), memory=(mem,), cpu_request=1.0)
    )
    assert rec.cpu is not None and rec.memory is not None
    from kopilot.cost import histograms

    b = histograms.CPU_BUCKETS
    assert rec.cpu.value == pytest.approx(b.bucket_start(b.find_bucket(0.5) + 1) * 1.15)
    assert rec.memory.value == 250 * 1024**2  # the VPA pod minimum


def test_kopilot_schedules_a_daily_cycle_and_wastes_less_without_more_throttling() -> None:
    s = _daily(10)
    train, test = replay.split(s, 0.7)
    history = rightsizing.History(subject="n/w/c", cpu=(train,))
    kop = rightsizing.Kopilot().recommend(history)
    krr = rightsizing.KrrSimple().recommend(history)
    assert kop.cpu is not None and kop.cpu.schedule and krr.cpu is not None
    assert any("daily schedule; backtested" in n for n in kop.notes)
    k, r = replay.replay(kop.cpu, test), replay.replay(krr.cpu, test)
    assert k.waste_hours < 0.7 * r.waste_hours
    assert k.over_intervals <= r.over_intervals


def test_kopilot_stays_static_without_a_daily_cycle() -> None:
    t = np.arange(0, 5 * DAY, 300.0)
    flat = series.Series.of(t, np.random.default_rng(1).uniform(0.4, 0.6, len(t)))
    rec = rightsizing.Kopilot().recommend(rightsizing.History(subject="n/w/c", cpu=(flat,)))
    assert rec.cpu is not None and not rec.cpu.schedule
    assert any("static" in n for n in rec.notes)


def test_replay_counts_oom_kills_as_rising_crossings() -> None:
    usage = series.Series.of(np.arange(6) * 60.0, [1, 3, 3, 1, 3, 1])
    out = replay.replay(rightsizing.Level(value=2.0), usage)
    assert out.crossings == 2
    assert out.over_intervals == 3
    assert out.waste_hours == pytest.approx(3 * 1 * 60 / 3600)


def test_fit_mig_picks_the_smallest_slice_that_holds_share_and_memory() -> None:
    assert rightsizing.fit_mig("A100-80GB", gpu_share=0.1, gpu_memory_bytes=5e9) == "1g.10gb"
    assert rightsizing.fit_mig("A100-80GB", gpu_share=0.1, gpu_memory_bytes=15e9) == "1g.20gb"
    assert rightsizing.fit_mig("A100-80GB", gpu_share=0.4, gpu_memory_bytes=15e9) == "3g.40gb"
    assert rightsizing.fit_mig("A100-80GB", gpu_share=0.9, gpu_memory_bytes=1e9) == "7g.80gb"
    assert rightsizing.fit_mig("A100-80GB", gpu_share=0.5, gpu_memory_bytes=90e9) is None
    assert rightsizing.fit_mig("T4", gpu_share=0.1, gpu_memory_bytes=1e9) is None


def test_data_quality_gate_refuses_gappy_or_impossible_history() -> None:
    t = np.arange(0, 400 * 60.0, 60.0)
    gappy = series.Series.of(np.concatenate([t[:150], t[150:] + 30 * DAY]), np.full(400, 0.5))
    rec = rightsizing.Kopilot().recommend(rightsizing.History(subject="n/w/c", cpu=(gappy,)))
    assert rec.cpu is None
    assert any("covers" in n and "gaps" in n for n in rec.notes)
    negative = series.Series.of(t, np.where(np.arange(400) == 7, -1.0, 0.5))
    rec = rightsizing.Kopilot().recommend(rightsizing.History(subject="n/w/c", cpu=(negative,)))
    assert rec.cpu is None
    assert any("negative" in n for n in rec.notes)

"""The health policy's detector state across cycles when streams come and go (a live cluster):
what was learnt stays learnt; new streams get their own detector; dead streams are let go."""

from __future__ import annotations

import numpy as np

from kopilot.health import monitors
from kopilot.model import cluster, series


def _snap(keys: list[str], t: float) -> cluster.ClusterSnapshot:
    times = np.arange(t - 600.0, t + 1, 60.0)
    metrics = {
        k: series.Series.of(times, np.full(len(times), 10.0 + i)) for i, k in enumerate(keys)
    }
    return cluster.ClusterSnapshot(time=t, metrics=metrics)


def _run(policy: monitors.HealthPolicy, state: monitors.MonitorState, keys: list[str], t: float):
    return policy.decide(_snap(keys, t), state, t).state


A, B, C = "pod/ml/a/cpu_cores", "pod/ml/b/cpu_cores", "pod/ml/c/cpu_cores"


def test_a_new_stream_does_not_reset_what_the_others_learnt() -> None:
    policy = monitors.HealthPolicy()
    state = policy.initial_state()
    for t in range(5):
        state = _run(policy, state, [A, B], 1000.0 + 60 * t)
    [learnt] = state.cohorts
    state = _run(policy, state, [A, B, C], 1300.0)
    assert [c.keys for c in state.cohorts] == [(A, B), (C,)]
    assert state.cohorts[0] is learnt and learnt.seen == 6  # still learning, not restarted
    assert state.cohorts[1].seen == 1


def test_a_stream_that_comes_back_returns_to_its_cohort() -> None:
    policy = monitors.HealthPolicy()
    state = _run(policy, policy.initial_state(), [A, B], 1000.0)
    state = _run(policy, state, [A], 1060.0)  # b gone for a cycle (half the cohort remains)
    state = _run(policy, state, [A, B], 1120.0)
    [cohort] = state.cohorts
    assert cohort.keys == (A, B) and cohort.seen == 3


def test_a_cohort_mostly_gone_is_retired_and_its_survivors_start_again() -> None:
    policy = monitors.HealthPolicy()
    state = _run(policy, policy.initial_state(), [A, B, C], 1000.0)
    state = _run(policy, state, [A], 1060.0)  # two of three gone
    [cohort] = state.cohorts
    assert cohort.keys == (A,) and cohort.seen == 1


def test_a_churning_cluster_is_capped_at_max_cohorts() -> None:
    policy = monitors.HealthPolicy(settings=monitors.MonitorSettings(max_cohorts=3))
    state = policy.initial_state()
    keys: list[str] = []
    for i in range(5):
        keys.append(f"pod/ml/p{i}/cpu_cores")
        state = _run(policy, state, keys, 1000.0 + 60 * i)
    assert len(state.cohorts) <= 3
    assert sorted(k for c in state.cohorts for k in c.keys) == sorted(keys)

"""The live MIG family proposes only named GPU-operator configs, per node, and says why it leaves
a node alone."""

from __future__ import annotations

import hypothesis
import pytest
from hypothesis import strategies as st

from kopilot.model import actions, cluster, gpus, resources
from kopilot.scheduling import migconfigs, migplanning, repartitioning, state


def mig_node(name: str, config: str | None, *, count: int = 2, **more: str) -> cluster.Node:
    labels = {"nvidia.com/gpu.product": "A100-80GB", migconfigs.LABEL_GPU_COUNT: str(count)}
    if config is not None:
        labels[migconfigs.LABEL_CONFIG] = config
    labels.update(more)
    plain = config in (None, migconfigs.DISABLED)
    return cluster.Node(
        name=name,
        cpu_milli=96_000,
        memory_mib=393_216,
        gpus=tuple(cluster.Gpu(index=i, model="A100-80GB") for i in range(count)) if plain else (),
        labels=labels,
    )


def mig_pod(name: str, profile: str, count: int = 1, node: str | None = None) -> cluster.Pod:
    return cluster.Pod(
        name=name,
        namespace="ml",
        request=resources.Resources(cpu_milli=1000, memory_mib=1024, mig={profile: count}),
        node=node,
        phase=cluster.PodPhase.RUNNING if node else cluster.PodPhase.PENDING,
    )


def decide(
    nodes: list[cluster.Node], pods: list[cluster.Pod], prior: object = None
) -> tuple[list[actions.Action], repartitioning.RepartitionState]:
    policy = repartitioning.RepartitionPolicy()
    snap = cluster.ClusterSnapshot(time=0.0, nodes=tuple(nodes), pods=tuple(pods))
    start = prior if isinstance(prior, repartitioning.RepartitionState) else policy.initial_state()
    d = policy.decide(snap, start, 0.0)
    return list(d.actions), d.state


def test_every_named_config_is_a_valid_layout_and_names_itself() -> None:
    for model in migconfigs.NAMED:
        named = migconfigs.layouts(model)
        assert len(named) == len(migconfigs.NAMED[model])
        for name, layout in named.items():
            gpus.validate_layout(gpus.model_named(model), layout.slices)
            assert migconfigs.name_for(layout) == name


def test_a_layout_the_operator_has_no_name_for_is_said_to_have_none() -> None:
    a100 = gpus.model_named("A100-80GB")
    odd = gpus.pack_profiles(a100, ["2g.20gb"] * 3 + ["1g.10gb"])
    assert odd is not None
    assert migconfigs.name_for(odd) is None
    assert migconfigs.layout_of("A100-80GB", "all-1g.5gb") is None  # an A100-40GB profile


def test_pending_mig_pods_get_a_named_config_on_a_disabled_node() -> None:
    nodes = [mig_node("a", migconfigs.DISABLED)]
    pods = [mig_pod(f"p{i}", "1g.10gb") for i in range(10)]
    out, _ = decide(nodes, pods)
    [action] = out
    assert isinstance(action, actions.Repartition)
    assert action.node == "a"
    assert action.evidence["mig_config"] == "all-1g.10gb"
    assert action.evidence["was"] == migconfigs.DISABLED
    assert action.evidence["gpus"] == 2
    assert "all-disabled -> all-1g.10gb" in action.reason


def test_the_free_planner_would_pick_an_unnamed_layout_the_family_does_not() -> None:
    nodes = [mig_node("a", migconfigs.DISABLED, count=1)]
    demand = {"2g.20gb": 3, "1g.10gb": 1}
    free = migplanning.plan(state.from_snapshot(nodes), demand, model="A100-80GB")
    assert [migconfigs.name_for(a.layout) for a in free.actions] == [None]
    pods = [mig_pod(f"p{i}", "2g.20gb") for i in range(3)] + [mig_pod("q", "1g.10gb")]
    out, _ = decide(nodes, pods)
    assert [a.evidence["mig_config"] for a in out] == ["all-2g.20gb"]


def test_pods_that_must_move_first_are_counted() -> None:
    nodes = [mig_node("a", "all-7g.80gb", count=1)]
    busy = mig_pod("busy", "7g.80gb", node="a")
    out, _ = decide(nodes, [busy, *(mig_pod(f"p{i}", "1g.10gb") for i in range(7))])
    assert out == []  # its only GPU is in use: the planner keeps it
    nodes = [mig_node("a", "all-7g.80gb", count=2)]
    out, _ = decide(nodes, [busy, *(mig_pod(f"p{i}", "1g.10gb") for i in range(7))])
    [action] = out
    assert action.evidence["pods_to_move"] == 1
    assert "1 GPU pod(s) must move first" in action.reason


@pytest.mark.parametrize(
    ("config", "extra", "said"),
    [
        ("my-custom", {}, "not a config of the GPU operator's default"),
        ("all-1g.10gb", {migconfigs.LABEL_STATE: "failed"}, "failed"),
        ("all-1g.10gb", {migconfigs.LABEL_GPU_COUNT: "two"}, "is not a GPU count"),
        ("all-1g.10gb", {migconfigs.LABEL_GPU_COUNT: "\u00b2"}, "is not a GPU count"),
        ("all-1g.10gb", {migconfigs.LABEL_GPU_COUNT: "100000000"}, "is not a GPU count"),
    ],
)
def test_a_node_kopilot_cannot_read_is_left_alone_and_said_once(
    config: str, extra: dict[str, str], said: str
) -> None:
    nodes = [mig_node("a", config, **extra)]
    pods = [mig_pod("p", "3g.40gb")]
    out, after = decide(nodes, pods)
    [alert] = out
    assert isinstance(alert, actions.Alert) and alert.subject == "node/a" and said in alert.reason
    again, _ = decide(nodes, pods, after)
    assert again == []


def test_a_node_the_mig_manager_is_working_on_is_skipped() -> None:
    nodes = [mig_node("a", migconfigs.DISABLED, **{migconfigs.LABEL_STATE: "pending"})]
    out, _ = decide(nodes, [mig_pod("p", "3g.40gb")])
    assert out == []


def test_nodes_without_the_mig_manager_label_are_not_touched() -> None:
    out, _ = decide([mig_node("a", None)], [mig_pod("p", "3g.40gb")])
    assert out == []


CONFIGS = [migconfigs.DISABLED, *migconfigs.NAMED["A100-80GB"], "custom"]
PROFILES = [p.name for p in gpus.model_named("A100-80GB").mig_profiles]


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    configs=st.lists(st.sampled_from(CONFIGS), min_size=1, max_size=4),
    counts=st.lists(st.integers(min_value=1, max_value=8), min_size=4, max_size=4),
    wanted=st.dictionaries(st.sampled_from(PROFILES), st.integers(1, 20), max_size=4),
)
def test_every_proposal_is_a_named_layout_the_hardware_holds(
    configs: list[str], counts: list[int], wanted: dict[str, int]
) -> None:
    nodes = [mig_node(f"n{i}", c, count=counts[i]) for i, c in enumerate(configs)]
    pods = [mig_pod(f"{p}-{i}", p) for p, n in wanted.items() for i in range(n)]
    out, _ = decide(nodes, pods)
    touched = [a.node for a in out if isinstance(a, actions.Repartition)]
    assert len(touched) == len(set(touched))  # at most one per node
    for a in out:
        if isinstance(a, actions.Repartition):
            gpus.validate_layout(gpus.model_named("A100-80GB"), a.layout.slices)
            assert migconfigs.name_for(a.layout) == a.evidence["mig_config"]
            assert a.evidence["mig_config"] != a.evidence["was"]
        else:
            assert isinstance(a, actions.Alert) and "custom" in a.reason


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    labels=st.dictionaries(
        st.sampled_from(
            [
                migconfigs.LABEL_CONFIG,
                migconfigs.LABEL_STATE,
                migconfigs.LABEL_GPU_COUNT,
                "nvidia.com/gpu.product",
                "nvidia.com/gpu.replicas",
            ]
        ),
        st.one_of(st.sampled_from([*CONFIGS, "success", "A100-40GB", "0", "-3"]), st.text()),
    ),
    wanted=st.dictionaries(st.text(min_size=1, max_size=12), st.integers(0, 9), max_size=3),
)
def test_garbage_labels_and_requests_never_raise(
    labels: dict[str, str], wanted: dict[str, int]
) -> None:
    node = cluster.Node(name="a", cpu_milli=1000, memory_mib=1024, labels=labels)
    pods = [mig_pod(f"p{i}", p, n) for i, (p, n) in enumerate(wanted.items())]
    out, _ = decide([node], pods)
    assert all(isinstance(a, actions.Repartition | actions.Alert) for a in out)

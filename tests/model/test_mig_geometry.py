"""MIG layouts: the real placement rules, and no layout the hardware cannot hold."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kopilot.model import errors, gpus

MIG_MODELS = [gpus.A100_40GB, gpus.A100_80GB, gpus.H100_80GB]


@pytest.mark.parametrize(
    ("profile", "starts"),
    [
        ("1g.10gb", (0, 1, 2, 3, 4, 5, 6)),
        ("1g.20gb", (0, 2, 4, 6)),
        ("2g.20gb", (0, 2, 4)),
        ("3g.40gb", (0, 4)),
        ("4g.40gb", (0,)),
        ("7g.80gb", (0,)),
    ],
)
def test_h100_allowed_starts_follow_nvidia_placement_table(
    profile: str, starts: tuple[int, ...]
) -> None:
    assert gpus.H100_80GB.profile(profile).starts == starts


def test_a100_40gb_profiles_are_named_by_their_memory() -> None:
    names = [p.name for p in gpus.A100_40GB.mig_profiles]
    assert names == ["1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"]
    assert gpus.A100_40GB.profile("3g.20gb").resource_name == "nvidia.com/mig-3g.20gb"


@pytest.mark.parametrize(
    ("slices", "problem"),
    [
        ([("3g.40gb", 2)], "cannot start at slice 2"),
        ([("4g.40gb", 0), ("4g.40gb", 0)], "overlaps"),
        ([("7g.80gb", 0), ("1g.10gb", 6)], "overlaps"),
        ([("2g.20gb", 6)], "cannot start at slice 6"),
        ([("5g.50gb", 0)], "has no MIG profile"),
    ],
)
def test_invalid_layouts_are_refused_with_the_reason(
    slices: list[tuple[str, int]], problem: str
) -> None:
    with pytest.raises(errors.InvalidLayoutError, match=problem):
        gpus.validate_layout(gpus.H100_80GB, [gpus.MigSlice(profile=p, start=s) for p, s in slices])


def test_non_mig_gpu_cannot_be_partitioned() -> None:
    with pytest.raises(errors.InvalidLayoutError, match="not MIG-capable"):
        gpus.validate_layout(gpus.model_named("T4"), [gpus.MigSlice(profile="1g.5gb", start=0)])


def test_pack_finds_the_layout_that_greedy_lowest_start_misses() -> None:
    layout = gpus.pack_profiles(gpus.A100_40GB, ["3g.20gb", "2g.10gb", "2g.10gb"])
    assert layout is not None
    assert layout.describe() == "2g.10gb@0+2g.10gb@2+3g.20gb@4"


def test_pack_refuses_what_does_not_fit() -> None:
    assert gpus.pack_profiles(gpus.A100_80GB, ["4g.40gb", "4g.40gb"]) is None
    assert gpus.pack_profiles(gpus.A100_80GB, ["1g.10gb"] * 8) is None


def _all_valid_layouts(model: gpus.GpuModel) -> set[tuple[tuple[str, int], ...]]:
    """Brute force over every subset of (profile, start) pairs: the ground truth."""
    options = [(p.name, s) for p in model.mig_profiles for s in p.starts]
    valid: set[tuple[tuple[str, int], ...]] = set()
    for k in range(1, 8):
        for combo in itertools.combinations(options, k):
            try:
                layout = gpus.validate_layout(
                    model, [gpus.MigSlice(profile=p, start=s) for p, s in combo]
                )
            except errors.InvalidLayoutError:
                continue
            valid.add(tuple((s.profile, s.start) for s in layout.slices))
    return valid


def test_pack_succeeds_exactly_when_some_valid_layout_exists() -> None:
    model = gpus.A100_80GB
    feasible_multisets = {
        tuple(sorted(p for p, _ in layout)) for layout in _all_valid_layouts(model)
    }
    names = [p.name for p in model.mig_profiles]
    for k in range(1, 5):
        for combo in itertools.combinations_with_replacement(names, k):
            packed = gpus.pack_profiles(model, combo)
            assert (packed is not None) == (tuple(sorted(combo)) in feasible_multisets), combo


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(MIG_MODELS),
    picks=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=8),
)
def test_every_packed_layout_is_one_the_hardware_can_hold(
    model: gpus.GpuModel, picks: list[int]
) -> None:
    profiles = [model.mig_profiles[i].name for i in picks]
    layout = gpus.pack_profiles(model, profiles)
    if layout is None:
        return
    used = [0] * gpus.MEMORY_SLICES
    compute = 0
    for s in layout.slices:
        p = model.profile(s.profile)
        assert s.start in p.starts
        for i in range(s.start, s.start + p.memory_slices):
            used[i] += 1
        compute += p.compute
    assert max(used) <= 1
    assert compute <= gpus.COMPUTE_SLICES
    assert sorted(layout.counts().items()) == sorted(
        {n: profiles.count(n) for n in set(profiles)}.items()
    )

"""GPU models and NVIDIA MIG geometry, with the real placement rules.

An MIG-capable A100 or H100 has 8 memory slices and 7 compute slices. A GPU instance profile
occupies a run of memory slices and may only start at certain slice indexes (NVIDIA MIG user
guide, "A100/H100 MIG profiles" placement tables):

| profile (A100-40GB / A100-80GB, H100-80GB) | compute | memory slices | allowed starts |
|---|---|---|---|
| 1g.5gb  / 1g.10gb                          | 1       | 1             | 0,1,2,3,4,5,6  |
| 1g.10gb / 1g.20gb                          | 1       | 2             | 0,2,4,6        |
| 2g.10gb / 2g.20gb                          | 2       | 2             | 0,2,4          |
| 3g.20gb / 3g.40gb                          | 3       | 4             | 0,4            |
| 4g.20gb / 4g.40gb                          | 4       | 4             | 0              |
| 7g.40gb / 7g.80gb                          | 7       | 8             | 0              |

A layout is valid when every slice starts at an allowed index and no two slices overlap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise

from kopilot.model import errors

MEMORY_SLICES = 8
COMPUTE_SLICES = 7


@dataclass(frozen=True, slots=True, kw_only=True)
class MigProfile:
    """One GPU-instance profile of one GPU model, e.g. `1g.10gb` on an A100-80GB."""

    name: str
    compute: int
    memory_slices: int
    memory_gb: int
    starts: tuple[int, ...]

    @property
    def resource_name(self) -> str:
        """The extended resource the NVIDIA device plugin advertises (mixed strategy)."""
        return f"nvidia.com/mig-{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuModel:
    """A GPU product: its memory and, when it supports MIG, its profiles."""

    name: str
    memory_gib: int
    mig_profiles: tuple[MigProfile, ...] = ()

    @property
    def mig_capable(self) -> bool:
        return bool(self.mig_profiles)

    def profile(self, name: str) -> MigProfile:
        for profile in self.mig_profiles:
            if profile.name == name:
                return profile
        known = ", ".join(p.name for p in self.mig_profiles) or "none (not MIG-capable)"
        raise errors.InvalidLayoutError(
            f"{self.name} has no MIG profile {name!r}; its profiles are: {known}"
        )


def _mig_family(unit_gb: int) -> tuple[MigProfile, ...]:
    """The six profiles of an A100/H100 whose smallest memory slice is `unit_gb`."""
    u = unit_gb
    return (
        MigProfile(
            name=f"1g.{u}gb", compute=1, memory_slices=1, memory_gb=u, starts=tuple(range(7))
        ),
        MigProfile(
            name=f"1g.{2 * u}gb", compute=1, memory_slices=2, memory_gb=2 * u, starts=(0, 2, 4, 6)
        ),
        MigProfile(
            name=f"2g.{2 * u}gb", compute=2, memory_slices=2, memory_gb=2 * u, starts=(0, 2, 4)
        ),
        MigProfile(
            name=f"3g.{4 * u}gb", compute=3, memory_slices=4, memory_gb=4 * u, starts=(0, 4)
        ),
        MigProfile(name=f"4g.{4 * u}gb", compute=4, memory_slices=4, memory_gb=4 * u, starts=(0,)),
        MigProfile(name=f"7g.{8 * u}gb", compute=7, memory_slices=8, memory_gb=8 * u, starts=(0,)),
    )


A100_40GB = GpuModel(name="A100-40GB", memory_gib=40, mig_profiles=_mig_family(5))
A100_80GB = GpuModel(name="A100-80GB", memory_gib=80, mig_profiles=_mig_family(10))
H100_80GB = GpuModel(name="H100-80GB", memory_gib=80, mig_profiles=_mig_family(10))

MODELS: Mapping[str, GpuModel] = {
    m.name: m
    for m in (
        A100_40GB,
        A100_80GB,
        H100_80GB,
        # Models of the Alibaba GPU trace (G1..G3 are undisclosed internal codes; not MIG-capable).
        GpuModel(name="V100M16", memory_gib=16),
        GpuModel(name="V100M32", memory_gib=32),
        GpuModel(name="P100", memory_gib=16),
        GpuModel(name="T4", memory_gib=16),
        GpuModel(name="A10", memory_gib=24),
        GpuModel(name="G1", memory_gib=16),
        GpuModel(name="G2", memory_gib=32),
        GpuModel(name="G3", memory_gib=32),
    )
}


def model_named(name: str) -> GpuModel:
    """Look a GPU model up by name; a name made by `model_for_profiles` is that model again; an
    unknown name is a plain, non-MIG GPU of unknown memory."""
    known = MODELS.get(name)
    if known is not None:
        return known
    if name.startswith(DERIVED_PREFIX):
        try:
            return model_for_profiles(name.removeprefix(DERIVED_PREFIX).split("+"))
        except errors.InvalidLayoutError:
            pass
    return GpuModel(name=name, memory_gib=0)


DERIVED_PREFIX = "MIG/"
"""Names of the models `model_for_profiles` derives: `MIG/1g.12gb+3g.47gb`."""

_PROFILE_NAME = re.compile(r"^([1-7])g\.([1-9][0-9]{0,3})gb$")
_SLICES_OF_COMPUTE = {2: 2, 3: 4, 4: 4, 7: 8}
_STARTS = {(1, 1): tuple(range(7)), (1, 2): (0, 2, 4, 6), (2, 2): (0, 2, 4), (3, 4): (0, 4)}


def model_for_profiles(names: Iterable[str]) -> GpuModel:
    """A MIG-capable model holding exactly these `<g>g.<mem>gb` profiles, on the 8-memory-slice,
    7-compute-slice geometry every MIG GPU but the A30 shares (A100, H100 80/94/96 GB, H200, B200:
    `3g.47gb` on an H100 NVL sits where `3g.40gb` sits on an H100-80GB). A GPU that is not in
    `MODELS` is understood from the profile names its device plugin advertises.

    A `1g` profile takes one memory slice, or two when it has about twice the memory of the
    smallest slice (`1g.24gb` next to `1g.12gb`, or next to `2g.24gb`). Raises InvalidLayoutError
    for a name that is not of the pattern or has no place in the geometry (5g, 6g).
    """
    parsed: dict[str, tuple[int, int]] = {}
    for name in names:
        m = _PROFILE_NAME.match(name)
        if not m or int(m.group(1)) not in (1, *_SLICES_OF_COMPUTE):
            raise errors.InvalidLayoutError(
                f"MIG profile {name!r} is not of the <compute>g.<memory>gb form of NVIDIA's "
                "profiles (1g, 2g, 3g, 4g or 7g)"
            )
        parsed[name] = (int(m.group(1)), int(m.group(2)))
    if not parsed:
        raise errors.InvalidLayoutError("no MIG profile names to derive a GPU model from")
    # the memory of one slice: from the multi-slice profiles, else the smallest 1g profile
    units = [mem / _SLICES_OF_COMPUTE[g] for g, mem in parsed.values() if g != 1]
    unit = min(units) if units else min(mem for _, mem in parsed.values())
    profiles: list[MigProfile] = []
    for name, (g, mem) in sorted(parsed.items()):
        slices = _SLICES_OF_COMPUTE.get(g) or (2 if mem >= 1.5 * unit else 1)
        profiles.append(
            MigProfile(
                name=name,
                compute=g,
                memory_slices=slices,
                memory_gb=mem,
                starts=_STARTS.get((g, slices), (0,)),
            )
        )
    widest = max(profiles, key=lambda p: (p.memory_slices, p.memory_gb))
    memory = round(widest.memory_gb * MEMORY_SLICES / widest.memory_slices)
    return GpuModel(
        name=DERIVED_PREFIX + "+".join(sorted(parsed)),
        memory_gib=memory,
        mig_profiles=tuple(profiles),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MigSlice:
    """One GPU instance placed in a layout."""

    profile: str
    start: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MigLayout:
    """A validated MIG geometry of one GPU: its slices, sorted by start."""

    model: str
    slices: tuple[MigSlice, ...]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.slices:
            out[s.profile] = out.get(s.profile, 0) + 1
        return out

    def describe(self) -> str:
        return "+".join(f"{s.profile}@{s.start}" for s in self.slices) or "(empty)"


def validate_layout(model: GpuModel, slices: Iterable[MigSlice]) -> MigLayout:
    """Check a layout against the hardware's placement rules; raise InvalidLayoutError if not valid."""
    if not model.mig_capable:
        raise errors.InvalidLayoutError(f"{model.name} is not MIG-capable")
    ordered = tuple(sorted(slices, key=lambda s: s.start))
    spans: list[tuple[int, int, str]] = []
    compute = 0
    for s in ordered:
        profile = model.profile(s.profile)
        if s.start not in profile.starts:
            raise errors.InvalidLayoutError(
                f"{model.name}: {s.profile} cannot start at slice {s.start}; "
                f"allowed starts are {list(profile.starts)}"
            )
        spans.append((s.start, s.start + profile.memory_slices, s.profile))
        compute += profile.compute
    for (_, end_a, name_a), (start_b, _, name_b) in pairwise(spans):
        if start_b < end_a:
            raise errors.InvalidLayoutError(
                f"{model.name}: {name_b}@{start_b} overlaps {name_a} (which ends at slice {end_a})"
            )
    if compute > COMPUTE_SLICES:
        raise errors.InvalidLayoutError(
            f"{model.name}: layout uses {compute} compute slices, the GPU has {COMPUTE_SLICES}"
        )
    return MigLayout(model=model.name, slices=ordered)


def pack_profiles(model: GpuModel, profiles: Iterable[str]) -> MigLayout | None:
    """Place the given profiles together on one GPU, or return None when no valid layout exists.

    A depth-first search over the allowed starts, largest profile first. Greedy lowest-start is not
    enough: 3g+2g+2g fits only as 2g@0, 2g@2, 3g@4, which lowest-start-first never tries.
    """
    wanted = sorted(
        (model.profile(p) for p in profiles), key=lambda p: (-p.memory_slices, -p.compute, p.name)
    )
    if sum(p.compute for p in wanted) > COMPUTE_SLICES:
        return None
    if sum(p.memory_slices for p in wanted) > MEMORY_SLICES:
        return None
    placed: list[MigSlice] = []

    def place(i: int, used: int) -> bool:
        if i == len(wanted):
            return True
        profile = wanted[i]
        for start in profile.starts:
            mask = ((1 << profile.memory_slices) - 1) << start
            if start + profile.memory_slices <= MEMORY_SLICES and not used & mask:
                placed.append(MigSlice(profile=profile.name, start=start))
                if place(i + 1, used | mask):
                    return True
                placed.pop()
        return False

    if not place(0, 0):
        return None
    return validate_layout(model, placed)

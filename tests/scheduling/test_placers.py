"""ProfilePlacer gives any profile the cluster twin's placer shape."""

from __future__ import annotations

import pytest

from kopilot.kits import randomness
from kopilot.model import cluster, resources
from kopilot.scheduling import placers, profiles
from tests.scheduling.builders import node


def gpu_pod(name: str, *, gpus: int = 0, milli: int = 0) -> cluster.Pod:
    return cluster.Pod(
        name=name,
        request=resources.Resources(cpu_milli=1000, memory_mib=1024, gpus=gpus, gpu_milli=milli),
    )


@pytest.mark.parametrize("name", profiles.NAMES)
def test_a_profile_places_and_releases_through_the_placer_shape(name: str) -> None:
    placer = placers.ProfilePlacer(
        [node("a", gpus_=3), node("b", gpus_=1, model="T4")], name, rng=randomness.rng(0, "t")
    )
    assert placer.name == name
    assert placer.gpu_free_milli().tolist() == [1000] * 4
    assert placer.place(gpu_pod("p1", milli=300))
    assert placer.place(gpu_pod("p2", gpus=2))
    assert int(placer.gpu_free_milli().sum()) == 4000 - 300 - 2000
    assert not placer.place(gpu_pod("p3", gpus=2))
    assert placer.last is not None and "Insufficient nvidia.com/gpu" in placer.last.reason()
    placer.release(gpu_pod("p2", gpus=2))
    assert int(placer.gpu_free_milli().sum()) == 4000 - 300

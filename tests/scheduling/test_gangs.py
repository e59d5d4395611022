"""Gang scheduling: two gangs that cannot both fit never deadlock and never hold partial GPUs."""

from __future__ import annotations

from kopilot.kits import randomness
from kopilot.model import cluster, resources
from kopilot.scheduling import gangs, placing, profiles, state
from tests.scheduling.builders import node


def member(gang: str, i: int, size: int, gpus_: int = 2) -> cluster.Pod:
    return cluster.Pod(
        name=f"{gang}-{i}",
        request=resources.Resources(cpu_milli=1000, memory_mib=1024, gpus=gpus_),
        gang=gang,
        gang_size=size,
    )


def test_two_gangs_each_needing_most_of_the_cluster_do_not_deadlock() -> None:
    cl = state.ClusterState([node("n1", gpus_=4), node("n2", gpus_=4)])
    queue = gangs.GangQueue(
        placing.Scheduler(cl, profiles.named("bestfit"), randomness.rng(0, "g"))
    )
    # Interleaved arrivals: neither gang is complete until its last member arrives.
    started = []
    for i in range(3):
        started += queue.submit(member("a", i, 3))
        started += queue.submit(member("b", i, 3))
    assert [d.gang for d in started] == ["a"]
    assert queue.waiting() == ["b"]
    assert {k.split("/")[1][0] for k in cl.allocations} == {"a"}  # b holds nothing
    for i in range(3):
        cl.release(f"default/a-{i}")
    assert [d.gang for d in queue.retry()] == ["b"]


def test_a_failed_gang_explains_which_member_blocks_it() -> None:
    cl = state.ClusterState([node("n1", gpus_=2)])
    sched = placing.Scheduler(cl, profiles.named("bestfit"), randomness.rng(0, "g"))
    from kopilot.scheduling import demands

    members = [demands.from_pod(member("c", i, 2)) for i in range(2)]
    decision = gangs.schedule_gang(sched, "c", members)
    assert not decision.placed
    assert "nothing held" in decision.reason()
    assert cl.allocations == {}

"""CPU cost of the extender's cluster sync (`Extender.sync`) on a large cluster, in-process.

Builds --nodes v1.Node and --pods running GPU pods (one GPU each, annotated with its index),
then times: the first sync (every pod adopted), a sync with nothing changed (what the reconcile
loop pays each interval in which an informer moved), and a sync in which one pod ended.

    python bench/extender_sync.py [--nodes 1000] [--pods 8000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TypeVar

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import datasets  # bench/datasets.py: --quick
from kopilot.kits import clocks, randomness
from kopilot.scheduling import extender_types, extending
from tests.scheduling.extender_fixtures import v1_node, v1_pod

T = TypeVar("T")


def _as(kind: type[T], obj: object) -> T:
    return extender_types.convert(obj, kind)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=8000, help="at most 8 per node")
    parser.add_argument("--repeat", type=int, default=5)
    datasets.add_quick(parser, nodes=100, pods=800, repeat=1)
    a = parser.parse_args()
    datasets.apply_quick(parser, a)
    nodes = [_as(extender_types.Node, v1_node(f"n{i}")) for i in range(a.nodes)]
    pods = []
    for i in range(min(a.pods, 8 * a.nodes)):
        obj = v1_pod(f"p{i}", requests={"nvidia.com/gpu": "1", "cpu": "2"})
        obj["spec"]["nodeName"] = f"n{i % a.nodes}"
        obj["status"] = {"phase": "Running"}
        obj["metadata"]["annotations"] = {"kopilot.io/gpu-indices": str(i // a.nodes)}
        pods.append(_as(extender_types.Pod, obj))
    first, same, ended = [], [], []
    for r in range(a.repeat):
        ext = extending.Extender(rng=randomness.rng(r, "bench"), clock=clocks.VirtualClock(0.0))
        t = time.process_time()
        ext.sync(nodes, pods)
        first.append(time.process_time() - t)
        t = time.process_time()
        assert not ext.sync(nodes, pods).changed
        same.append(time.process_time() - t)
        gone = list(pods)
        gone[r] = msgspec.structs.replace(
            pods[r], status=extender_types.PodStatus(phase="Succeeded")
        )
        t = time.process_time()
        assert ext.sync(nodes, gone).released == (f"default/p{r}",)
        ended.append(time.process_time() - t)
    med = statistics.median
    print(f"{len(nodes)} nodes, {len(pods)} pods, median of {a.repeat} (CPU seconds):")
    print(f"  first sync (adopt every pod) {med(first):.3f}")
    print(f"  nothing changed              {med(same):.3f}")
    print(f"  one pod ended                {med(ended):.3f}")


if __name__ == "__main__":
    main()

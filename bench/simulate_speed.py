"""How long the default `kopilot simulate` takes, and its peak memory.

Runs the whole default scenario (22.3 h of the GenAI trace for every scaling policy, plus the GPU
cluster fill for every placement policy) in a fresh process, `--repeat` times, and prints wall time
and peak resident memory. Target (issue 2): under 60 s on a 2-core machine.

    python bench/simulate_speed.py [--repeat 3] [--no-cluster]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import datasets  # bench/datasets.py: --quick


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--no-cluster",
        action="store_true",
        help="time the serving half only (simulate --no-cluster)",
    )
    datasets.add_quick(parser, repeat=1, no_cluster=True)
    args = parser.parse_args()
    datasets.apply_quick(parser, args)
    times = []
    peak_kib = 0
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "kopilot.cli",
                    "simulate",
                    "-q",
                    "-o",
                    out,
                    *(["--no-cluster"] if args.no_cluster else []),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            times.append(time.perf_counter() - start)
        peak_kib = max(peak_kib, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        print(f"run {i + 1}: {times[-1]:.1f} s")
    print(
        f"kopilot simulate (default scenario{', serving half only' if args.no_cluster else ''}): median {statistics.median(times):.1f} s, "
        f"max {max(times):.1f} s over {len(times)} runs; peak RSS {peak_kib / 1024:.0f} MiB; target < 60 s"
    )


if __name__ == "__main__":
    main()

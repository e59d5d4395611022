"""The replay exporter at scale: step cost and scrape cost for a cluster of N 8-GPU nodes.

Builds a cluster description in memory (`--nodes` nodes, 8 GPUs each, 8 serving pods per node),
then measures, in this process:

- step: one trace hour (240 ticks of 15 s) of the replay, what `--speed 3600` must do every wall
  second (at the default 60x it is one minute, 4 ticks, a second);
- scrape: one `GET /metrics` rendering (prometheus_client text format), and its size and series;
- determinism: the exposition of two replays with the same seed, stepped differently, is identical.

    python bench/replay_exporter.py [--nodes 10,100,250] [--repeat 3]

Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

from kopilot.kits import clocks
from kopilot.serving import instruments
from kopilot.sim import clusterfiles, replaying, replayserving


def cluster(nodes: int) -> clusterfiles.ClusterSpec:
    lines = ["nodes:"]
    lines += [f'  - {{name: gpu-node-{n}, cpu: "96", memory: 1Ti, gpus: 8}}' for n in range(nodes)]
    lines.append("pods:")
    for n in range(nodes):
        for g in range(8):
            lines.append(
                f"  - {{name: svc{g % 4}-7d9f8c6b5-n{n}g{g}, namespace: ml, node: gpu-node-{n}, "
                f"owner: {{kind: ReplicaSet, name: svc{g % 4}-7d9f8c6b5}}, gpus: [{g}], "
                'requests: {cpu: "8", memory: 32Gi, nvidia.com/gpu: 1}, serving: {peak_rps: 10}}'
            )
    return clusterfiles.parse("\n".join(lines) + "\n", source="bench")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", default="10,100,250", help="comma-separated cluster sizes")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="A small run: 10 nodes, 1 repeat.")
    args = ap.parse_args()
    if args.quick:
        args.nodes, args.repeat = "10", 1
    traces = replaying.bundled_traces()
    settings = replaying.Settings(latency_buckets=instruments.LATENCY_BUCKETS, seed=1)
    print(f"{'nodes':>6} {'pods':>6} {'GPUs':>6} {'step 1 trace h':>15} {'scrape':>9} "
          f"{'MB':>6} {'series':>8}")  # fmt: skip
    for nodes in (int(n) for n in args.nodes.split(",")):
        spec = cluster(nodes)
        steps, scrapes, body = [], [], b""
        for _ in range(args.repeat):
            replay = replaying.Replay(spec, traces, settings)
            t0 = time.perf_counter()
            replay.advance_to(3600.0)
            steps.append(time.perf_counter() - t0)
            clock = clocks.VirtualClock(0.0)
            exporter = replayserving.Exporter(replay, clock)
            clock.advance_to(60.0)  # the replay is already at 1 h: nothing left to step
            t0 = time.perf_counter()
            body = exporter.render()
            scrapes.append(time.perf_counter() - t0)
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        print(
            f"{nodes:>6} {len(spec.pods):>6} {nodes * 8:>6} {statistics.median(steps):>13.2f} s "
            f"{statistics.median(scrapes):>7.3f} s {len(body) / 1e6:>6.1f} {series:>8}"
        )
    a, b = (
        replaying.Replay(cluster(4), traces, settings),
        replaying.Replay(cluster(4), traces, settings),
    )
    a.advance_to(7200.0)
    for t in range(0, 7201, 97):
        b.advance_to(float(t))
    b.advance_to(7200.0)
    same = a.families() == b.families()
    print(f"same seed, stepped at once vs every 97 s: {'identical' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()

"""Cost of one live signals read (`kopilot.metrics.signals.Reader.read`) on a large cluster.

Backfills a real Prometheus on 127.0.0.1 with --history-h hours of cAdvisor memory and CPU for
--pods pods, and dcgm-exporter utilisation, memory, temperature and XIDs for --gpu-nodes nodes of
8 GPUs (synthetic shapes: the point is the size, not the values), then times --repeat reads at the
history's end: the queries (one per stream kind, whatever the number of objects) and the split
into streams with the data-quality gate. Prints the median and worst read and the streams found.

    python bench/live_signals.py [--pods 1000] [--gpu-nodes 100] [--history-h 2] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kopilot.metrics import prometheus, signals
from tests.fixtures import prometheus as fx

STEP = 60.0
MIB = 1024 * 1024


def history(pods: int, gpu_nodes: int, hours: float, end: float) -> str:
    w = fx.Writer()
    t = np.arange(end - hours * 3600, end + 1, STEP)
    n = len(t)
    rng = np.random.default_rng(0)
    for i in range(pods):
        ident = {"namespace": f"ns-{i % 20}", "pod": f"pod-{i}", "container": "app"}
        w.add("container_memory_working_set_bytes", ident, t, (500 + rng.normal(0, 5, n)) * MIB)
        w.add("container_cpu_usage_seconds_total", ident, t, np.cumsum(np.full(n, 0.3 * STEP)))
    for node in range(gpu_nodes):
        for gpu in range(8):
            labels = {"Hostname": f"gpu-node-{node}", "gpu": str(gpu), "UUID": f"GPU-{node}-{gpu}"}
            w.add("DCGM_FI_DEV_GPU_UTIL", labels, t, np.clip(rng.normal(50, 10, n), 0, 100))
            w.add("DCGM_FI_DEV_FB_USED", labels, t, np.full(n, 20_000.0))
            w.add("DCGM_FI_DEV_GPU_TEMP", labels, t, 60 + rng.normal(0, 1, n))
            w.add("DCGM_FI_DEV_XID_ERRORS", labels, t, np.zeros(n))
    return w.text()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--gpu-nodes", type=int, default=100)
    parser.add_argument("--history-h", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="A small run: 100 pods, 10 GPU nodes, 1 repeat."
    )
    a = parser.parse_args()
    if a.quick:
        a.pods, a.gpu_nodes, a.repeat = 100, 10, 1
    why = fx.available()
    if why is not None:
        sys.exit(f"error: {why}")
    end = float(fx.T0 + 48 * 3600)
    text = history(a.pods, a.gpu_nodes, a.history_h, end)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with fx.serving(Path(tmp), text) as url:
            print(f"backfilled and started in {time.perf_counter() - started:.1f} s")
            settings = signals.Settings(max_skew_s=None, history_s=3600.0)
            with prometheus.Client(url, timeout=60) as client:
                reader = signals.Reader(client, settings)
                took: list[float] = []
                reading = None
                for _ in range(a.repeat):
                    t0 = time.perf_counter()
                    reading = reader.read(end)
                    took.append(time.perf_counter() - t0)
    assert reading is not None
    print(
        f"{a.pods} pods, {a.gpu_nodes * 8} GPUs, {a.history_h:g} h history: "
        f"{reading.queries} queries per read, {len(reading.streams)} streams, "
        f"{len(reading.dropped)} dropped, blind={reading.blind}"
    )
    print(
        f"read: median {statistics.median(took):.2f} s, worst {max(took):.2f} s "
        f"over {a.repeat} reads"
    )


if __name__ == "__main__":
    main()

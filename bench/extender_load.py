"""Load benchmark of `kopilot extender`: filter + prioritize for a 1,000-node request, under
concurrent clients, on loopback.

Starts `kopilot extender` as a separate process on 127.0.0.1, then CLIENTS threads each send
REQUESTS filter+prioritize pairs (a GPU-share pod, full v1.Node objects as kube-scheduler sends
with nodeCacheCapable: false; then the same with NodeNames only, nodeCacheCapable: true). Prints
p50/p99 latency of one filter+prioritize pair and the server's CPU time per pair (from
/proc/<pid>/stat: less noisy than latency on a shared machine). With --bind, each client binds
its pod to the best-scored node after prioritize (as kube-scheduler does; the bind is not in the
latency), so the cluster state changes between pairs. Bounded in count and time; stops the server.

With --in-process, no server: the CPU time (time.process_time) of answering the same bodies
with `extender_server.answer` (parse, filter/prioritize, encode), one client, no sockets.

    python bench/extender_load.py --nodes 1000 --clients 4 --requests 100
    python bench/extender_load.py --nodes 1000 --requests 200 --in-process
"""

from __future__ import annotations

import argparse
import http.client
import json
import operator
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import datasets  # bench/datasets.py: --quick
from kopilot.kits import randomness
from kopilot.scheduling import extender_server, extending
from tests.scheduling.extender_fixtures import args, v1_node, v1_pod

POD_NAME = re.compile(rb'^\{"Pod": \{"metadata": \{"name": "([^"]+)"')
"""The pod's name at the head of a request body as `args(pod(...))` writes it: the client reads
no more of a 0.5 MB body to bind (it would measure itself rather than the server)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("extender did not become ready")


def pod(prefix: str, i: int) -> dict[str, object]:
    """A GPU-share pod (100..900 milli) with a name and uid of its own."""
    return v1_pod(
        f"{prefix}-{i}",
        requests={"cpu": "4", "memory": "8Gi", "kopilot.io/gpu-milli": str(100 + 50 * (i % 17))},
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bind_body(body: bytes, prios: bytes) -> bytes:
    """ExtenderBindingArgs for the request's pod on its best-scored node (first on ties)."""
    name = POD_NAME.search(body[:200])
    assert name is not None
    best = max(orjson.loads(prios), key=operator.itemgetter("Score"))["Host"]
    pod = name.group(1).decode()
    return orjson.dumps(
        {"PodName": pod, "PodNamespace": "default", "PodUID": f"uid-{pod}", "Node": best}
    )


def run(
    port: int, bodies: list[bytes], requests: int, clients: int, *, bind: bool = False
) -> list[float]:
    latencies: list[float] = []
    refused: list[bytes] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        for i in range(requests):
            body = bodies[(k * requests + i) % len(bodies)]
            t0 = time.perf_counter()
            for verb in ("filter", "prioritize"):
                conn.request(
                    "POST", f"/{verb}", body=body, headers={"Content-Type": "application/json"}
                )
                resp = conn.getresponse()
                resp_body = resp.read()
                if resp.status != 200:
                    raise SystemExit(f"{verb} answered {resp.status}")
            mine.append((time.perf_counter() - t0) * 1000)
            if bind:
                conn.request("POST", "/bind", body=bind_body(body, resp_body))
                resp = conn.getresponse()
                answer = resp.read()
                if resp.status != 200:
                    raise SystemExit(f"bind answered {resp.status}: {answer[:200]!r}")
                if orjson.loads(answer)["Error"]:  # another client's pod took the room first
                    with lock:
                        refused.append(body)
        conn.close()
        with lock:
            latencies.extend(mine)

    failures: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            client(k)
        except BaseException as e:  # a failed client must fail the run, not vanish
            with lock:
                failures.append(e)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    if failures:
        raise SystemExit(f"a client failed: {failures[0]}")
    if refused:
        print(f"  {len(refused)} binds refused: the node filled up between prioritize and bind")
    return latencies


def in_process(bodies: list[bytes], requests: int, *, bind: bool) -> list[float]:
    """CPU seconds of each filter+prioritize pair answered by `extender_server.answer`, no
    sockets."""
    ext = extending.Extender(profile="kopilot", rng=randomness.rng(0, "extender"))
    for body in bodies[-2:]:  # warm-up: the node cache and the profile (pods unused below)
        extender_server.answer(ext, "filter", body)
    spent = []
    for body in bodies[:requests]:
        t0 = time.process_time()
        extender_server.answer(ext, "filter", body)
        code, prios = extender_server.answer(ext, "prioritize", body)
        spent.append(time.process_time() - t0)
        if code != 200:
            raise SystemExit(f"prioritize answered {code}")
        if bind:
            extender_server.answer(ext, "bind", bind_body(body, prios))
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--requests", type=int, default=100, help="filter+prioritize pairs per client"
    )
    parser.add_argument(
        "--bind", action="store_true", help="bind each pod after prioritize (state changes)"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="CPU per pair without a server (one client)"
    )
    datasets.add_quick(parser, nodes=200, requests=20)
    opts = parser.parse_args()
    datasets.apply_quick(parser, opts)
    nodes = [v1_node(f"node-{i:04d}", gpus=8 if i % 3 else 2) for i in range(opts.nodes)]
    names = [n["metadata"]["name"] for n in nodes]
    clients = 1 if opts.in_process else opts.clients
    count = clients * opts.requests + 2  # + 2 for the warm-up
    # One pod per pair, as kube-scheduler asks about each pod once: every filter is computed
    # afresh (only its prioritize can reuse filter's work); the two modes use other pods.
    full = [json.dumps(args(pod("full", i), nodes)).encode() for i in range(count)]
    cached = [json.dumps(args(pod("names", i), names=names)).encode() for i in range(count)]
    print(
        f"request body: {len(full[0]) / 1e6:.2f} MB with {opts.nodes} v1.Node objects, "
        f"{len(cached[0]) / 1e3:.0f} kB with NodeNames"
    )
    modes = (
        ("nodeCacheCapable=false (Nodes)", full),
        ("nodeCacheCapable=true (NodeNames)", cached),
    )
    if opts.in_process:
        for label, bodies in modes:
            # NodeNames requests need the nodes learned first: warm up with two full bodies.
            cpu = np.array(in_process([*bodies, *full[-2:]], opts.requests, bind=opts.bind)) * 1000
            print(
                f"{label}, in-process: {cpu.mean():.2f} ms CPU per filter+prioritize pair "
                f"(p50 {np.percentile(cpu, 50):.2f}, p99 {np.percentile(cpu, 99):.2f}, "
                f"max {cpu.max():.2f})"
            )
        return 0
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kopilot.cli", "extender", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(port, time.monotonic() + 30)
        run(port, full[-2:], 2, 1)  # warm-up: the node cache and the profile (pods unused below)
        for label, bodies in modes:
            cpu0 = cpu_seconds(proc.pid)
            started = time.perf_counter()
            lat = np.array(run(port, bodies, opts.requests, opts.clients, bind=opts.bind))
            wall = time.perf_counter() - started
            cpu = (cpu_seconds(proc.pid) - cpu0) / lat.size
            print(
                f"{label}: {lat.size} filter+prioritize pairs, {opts.clients} concurrent clients: "
                f"p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms, "
                f"max {lat.max():.1f} ms, {lat.size / wall:.0f} pairs/s, "
                f"server CPU {cpu * 1000:.2f} ms per pair{' (+ bind)' if opts.bind else ''}"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

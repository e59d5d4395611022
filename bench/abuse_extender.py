"""Abuse benchmark of `kopilot extender` (issue #17): each abuse scenario against the server as a
separate process on 127.0.0.1, bounded in count and time. Prints per scenario the server's peak
RSS (goal: under the controller chart's 1 GiB limit, bench/abuse.py says why that one), whether
GET /healthz answered within 1 s throughout (polled every 100 ms), the slowest probe, and the
status codes the scenario's clients got (goal: no 5xx for a client's fault).

    python bench/abuse_extender.py                   # every scenario, ~2-3 min
    python bench/abuse_extender.py --only flood,slow-clients
    python bench/abuse_extender.py --quick           # every scenario with a tenth of the counts
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import abuse  # bench/abuse.py: the child server, RSS sampling, probe polling, the table row
from tests.scheduling.extender_fixtures import args, v1_node, v1_pod

TIME_LIMIT_S = 120.0
"""No scenario runs longer than this (it stops early and says how far it got)."""


class Http:
    """One keep-alive connection to the extender."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port, self.timeout = port, timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def post(self, verb: str, body: bytes) -> str:
        try:
            self.conn.request("POST", f"/{verb}", body=body)
            resp = self.conn.getresponse()
            resp.read()
            if resp.getheader("connection") == "close":
                self.reset()
            return str(resp.status)
        except (OSError, http.client.HTTPException) as e:
            self.reset()
            return type(e).__name__

    def reset(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)

    def close(self) -> None:
        self.conn.close()


def body(pod: dict[str, Any], nodes: list[dict[str, Any]] | None = None, **kw: Any) -> bytes:
    return json.dumps(args(pod, nodes, **kw)).encode()


def gpu_pod(name: str, **requests: str) -> dict[str, Any]:
    return v1_pod(name, requests={"nvidia.com/gpu": "1", **requests})


# ---- scenarios: each returns what it wants said after its row --------------------------------


def bad_node(port: int, codes: Counter[str], quick: bool) -> str:
    """One node with nvidia.com/gpu.replicas '4x', one H100 NVL (mig-1g.12gb) among 48 good."""
    nodes = [v1_node(f"n{i}", gpus=8) for i in range(48)]
    bad = v1_node("replicas-4x", gpus=8)
    bad["metadata"]["labels"]["nvidia.com/gpu.replicas"] = "4x"
    nvl = v1_node("h100-nvl", gpus=0, extra={"nvidia.com/mig-1g.12gb": "14"})
    nvl["metadata"]["labels"]["nvidia.com/gpu.product"] = "NVIDIA-H100-NVL"
    del nvl["metadata"]["labels"]["kopilot.io/gpu-model"]
    c = Http(port)
    passed = failed_bad = 0
    pods = abuse.scaled(200, quick)
    for i in range(pods):
        pod = v1_pod(f"p{i}", requests={"nvidia.com/mig-1g.12gb": "1"} if i % 2 else {})
        c.conn.request("POST", "/filter", body=body(pod, [bad, nvl, *nodes]))
        resp = c.conn.getresponse()
        data = json.loads(resp.read() or b"{}")
        codes[str(resp.status)] += 1
        if resp.status == 200:
            failed_bad += "replicas-4x" in (data.get("FailedNodes") or {})
            passed += i % 2 == 1 and "h100-nvl" in str(data.get("Nodes"))
    c.close()
    return (
        f"replicas-4x failed with its reason in {failed_bad}/{pods}; "
        f"MIG pods fit on the NVL {passed}/{pods // 2}"
    )


def huge_quantity(port: int, codes: Counter[str], quick: bool) -> str:
    nodes = [v1_node(f"n{i}", gpus=8, extra={"cpu": "1e24"} if i == 0 else None) for i in range(20)]
    c = Http(port)
    after = []
    for i in range(abuse.scaled(200, quick)):
        pod = gpu_pod(f"q{i}", cpu="1e24") if i % 2 == 0 else gpu_pod(f"q{i}")
        for verb in ("filter", "prioritize"):
            code = c.post(verb, body(pod, nodes))
            codes[code] += 1
            if i % 2:
                after.append(code)
    c.close()
    return f"normal pods after 1e24 ones: {after.count('200')}/{len(after)} answered 200"


def init_containers(port: int, codes: Counter[str], quick: bool) -> str:
    nodes = [v1_node(f"two{i}", gpus=2) for i in range(10)]
    c = Http(port)
    fit = 0
    for i in range(abuse.scaled(100, quick)):
        pod = gpu_pod(f"init{i}")
        pod["spec"]["initContainers"] = [
            {"name": "warm", "resources": {"requests": {"nvidia.com/gpu": "4"}}}
        ]
        c.conn.request("POST", "/filter", body=body(pod, nodes))
        resp = c.conn.getresponse()
        data = json.loads(resp.read())
        codes[str(resp.status)] += 1
        fit += len((data.get("Nodes") or {}).get("items") or [])
    c.close()
    return f"nodes passed for a pod whose init container needs 4 GPUs on 2-GPU nodes: {fit}"


def node_name_flood(port: int, codes: Counter[str], quick: bool) -> str:
    """100,000 node names never seen again, in full v1.Node objects, no API connection."""
    c = Http(port)
    started, sent = time.monotonic(), 0
    for r in range(abuse.scaled(1000, quick)):
        if time.monotonic() - started > TIME_LIMIT_S:
            break
        nodes = [v1_node(f"flood-{r}-{i}", gpus=8) for i in range(100)]
        codes[c.post("filter", body(gpu_pod(f"f{r}"), nodes))] += 1
        sent += 100
    status = json.loads(_get(port, "/healthz"))
    c.close()
    return f"{sent:,} names sent; the extender holds {status['nodes']:,} nodes"


def slow_clients(port: int, codes: Counter[str], quick: bool) -> str:
    socks = []
    hold_s = 1.0 if quick else 10.0
    for i in range(abuse.scaled(500, quick)):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(
                b"POST /filter HTTP/1.1\r\nHost: x\r\n"
                if i % 2
                else b"POST /filter HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n{"
            )
            socks.append(s)
        except OSError as e:
            codes[f"connect:{type(e).__name__}"] += 1
    nodes = [v1_node(f"n{i}", gpus=8) for i in range(50)]
    c = Http(port)
    deadline = time.monotonic() + hold_s
    while time.monotonic() < deadline:
        codes[c.post("filter", body(gpu_pod("during-slow"), nodes))] += 1
        time.sleep(0.05)
    for s in socks:
        s.close()
    c.close()
    return f"{len(socks)} slow connections held {hold_s:g} s"


def flood(port: int, codes: Counter[str], quick: bool) -> str:
    nodes = [v1_node(f"n{i}", gpus=8) for i in range(100)]
    full = body(gpu_pod("flood"), nodes)
    names = body(gpu_pod("flood"), names=[f"n{i}" for i in range(100)])
    lock = threading.Lock()
    calls = abuse.scaled(200, quick)

    def client(k: int) -> None:
        c = Http(port)
        for j in range(calls):
            code = c.post("filter" if j % 2 else "prioritize", full if j % 3 else names)
            with lock:
                codes[code] += 1
        c.close()

    abuse.clients(8, client, TIME_LIMIT_S)
    return f"8 clients x {calls} filter/prioritize, 100 nodes"


def oversize(port: int, codes: Counter[str], quick: bool) -> str:
    """Eight ~60 MB bodies (6 MB with --quick) at once (full v1.Node objects with long image lists), then one over
    the 64 MiB limit."""
    node = v1_node("x", gpus=8)
    node["status"]["images"] = [{"names": [f"registry/image-{i}:" + "v" * 40]} for i in range(60)]
    per_node = len(json.dumps(node))
    count = abuse.scaled(60_000_000, quick) // per_node
    nodes = []
    for i in range(count):
        n = json.loads(json.dumps(node))
        n["metadata"]["name"] = f"big{i}"
        nodes.append(n)
    big = body(gpu_pod("big"), nodes)
    nodes.clear()
    lock = threading.Lock()

    def client() -> None:
        c = Http(port, timeout=120)
        code = c.post("filter", big)
        with lock:
            codes[code] += 1
        c.close()

    abuse.clients(8, lambda _: client(), TIME_LIMIT_S)
    c = Http(port, timeout=120)
    codes[c.post("filter", big + b" " * (70 * 2**20 - len(big)))] += 1
    c.close()
    return f"bodies of {len(big) / 2**20:.0f} MiB ({count:,} nodes)"


def malformed(port: int, codes: Counter[str], quick: bool) -> str:
    bodies = [
        b"{not json",
        b'{"Pod": 5}',
        b"[" * 10_000,
        json.dumps({"Pod": {"metadata": {"name": "x" * 10_000}}}).encode(),
        b'{"Pod": {}, "NodeNames": ["' + b"y" * 300 + b'"]}',
        bytes(range(256)),
    ]
    c = Http(port)
    sent = abuse.scaled(600, quick)
    for i in range(sent):
        codes[c.post(("filter", "prioritize", "bind")[i % 3], bodies[i % len(bodies)])] += 1
    c.close()
    for raw in (
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01",
        b"GET /" + b"a" * 100_000 + b"\r\n",
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            head = s.recv(64)
            codes[f"raw:{head[9:12].decode(errors='replace') or 'closed'}"] += 1
    return f"{sent} malformed bodies, 3 non-HTTP byte strings"


def _get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().read()
    finally:
        conn.close()


SCENARIOS: dict[str, Callable[[int, Counter[str], bool], str]] = {
    "bad-node": bad_node,
    "huge-quantity": huge_quantity,
    "init-containers": init_containers,
    "node-name-flood": node_name_flood,
    "slow-clients": slow_clients,
    "flood": flood,
    "oversize": oversize,
    "malformed": malformed,
}
LIMIT = abuse.CONTROLLER_MEMORY_LIMIT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default="", help="comma-separated scenarios: " + ", ".join(SCENARIOS)
    )
    parser.add_argument("--quick", action="store_true", help="a tenth of each scenario's counts")
    parser.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir(), "abuse-extender"))
    opts = parser.parse_args()
    chosen = [s for s in opts.only.split(",") if s] or list(SCENARIOS)
    if unknown := sorted(set(chosen) - SCENARIOS.keys()):
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    opts.logs.mkdir(parents=True, exist_ok=True)
    print(abuse.table_header(LIMIT))
    for name in chosen:
        port = abuse.free_port()  # a fresh server per scenario: its RSS is that scenario's
        command = abuse.python_command("-m", "kopilot.cli", "extender", "--port", str(port))
        with abuse.ChildServer(command, log=opts.logs / f"{name}.log") as child:
            child.wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=30)
            probe = {"/healthz": abuse.http_probe(f"http://127.0.0.1:{port}/healthz")}
            codes: Counter[str] = Counter()
            with abuse.Watch(child.pid, probe, probe_every_s=0.1) as watch:
                note = SCENARIOS[name](port, codes, opts.quick)
            row = abuse.table_row(
                name, watch.result(), codes, memory_limit=LIMIT, alive=child.alive
            )
            print(row, flush=True)
            print(f"{'':<28} {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Dynamic batching vs one-request-at-a-time inference, same model, same run, over real HTTP.

Starts `kopilot serve` twice on 127.0.0.1 with the same model - once with dynamic batching, once
with `--max-batch-size 1` - and drives each with a closed-loop load generator (asyncio + httpx:
N clients, each sending its next request as soon as the last one is answered) at several
concurrencies. Prints throughput and p50/p99 latency per mode and the batching/unbatched ratios.

    python bench/serving_batching.py                       # the real YOLOv8n export from nudenet
    python bench/serving_batching.py --image tests/serving/data/bus.jpg --duration 15

Only loopback traffic; every loop is bounded in time. Figures depend on the machine and on what
else runs on it: read the load average printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

import datasets  # bench/datasets.py: --quick

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One closed-loop run against one server."""

    latencies: list[float]  # seconds, answers completed in the measured window
    errors: int
    window: float
    inferred: float  # images run through the model during the run (warm-up included)
    batches: float
    cpu_s: float  # server process CPU during the run


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Point:
    mode: str
    concurrency: int
    throughput: float
    p50_ms: float
    p99_ms: float
    ok: int
    errors: int
    mean_batch: float
    server_cpu_ms: float  # server CPU (user + system, all threads) per image inferred


def default_model() -> pathlib.Path:
    spec = importlib.util.find_spec("nudenet")
    if spec is None or spec.origin is None:
        datasets.fail(
            "the test model (nudenet) is not installed: run scripts/setup.d/40-serving-model.sh"
        )
    return pathlib.Path(spec.origin).parent / "320n.onnx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(model: pathlib.Path, args: list[str], log: pathlib.Path):  # type: ignore[no-untyped-def]
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "from kopilot.cli import main; main()",
        "serve",
        "--model",
        str(model),
    ]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *args]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise SystemExit(f"server exited: {log.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                time.sleep(0.2)
            else:
                raise SystemExit("server not ready after 120 s")
            yield url, process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads), from /proc."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_totals(url: str) -> tuple[float, float]:
    """(sum, count) of the server's batch-size histogram."""
    total = count = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == "kopilot_serving_batch_size_sum":
                total = sample.value
            elif sample.name == "kopilot_serving_batch_size_count":
                count = sample.value
    return total, count


async def closed_loop(
    url: str, body: bytes, *, concurrency: int, warmup: float, duration: float
) -> tuple[list[float], int, float]:
    """Latencies (s) of answers completed in the measured window, errors, window length."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "image/jpeg"}
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + duration

        async def user() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                sent = time.perf_counter()
                response = await client.post("/v1/detect", content=body, headers=headers)
                done = time.perf_counter()
                if measure_from <= done <= stop_at:
                    if response.status_code == 200:
                        latencies.append(done - sent)
                    else:
                        errors += 1

        await asyncio.gather(*(user() for _ in range(concurrency)))
    return latencies, errors, duration


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def sample(
    url: str, pid: int, body: bytes, *, concurrency: int, warmup: float, duration: float
) -> Sample:
    before, cpu_before = batch_totals(url), cpu_seconds(pid)
    latencies, errors, window = asyncio.run(
        closed_loop(url, body, concurrency=concurrency, warmup=warmup, duration=duration)
    )
    after, cpu_after = batch_totals(url), cpu_seconds(pid)
    return Sample(
        latencies=latencies,
        errors=errors,
        window=window,
        inferred=after[0] - before[0],
        batches=after[1] - before[1],
        cpu_s=cpu_after - cpu_before,
    )


def summarize(mode: str, concurrency: int, samples: list[Sample]) -> Point:
    """Pool the rounds: all latencies together, answers over the summed windows."""
    latencies = [x for s in samples for x in s.latencies]
    inferred = sum(s.inferred for s in samples)
    batches = sum(s.batches for s in samples)
    return Point(
        mode=mode,
        concurrency=concurrency,
        throughput=len(latencies) / sum(s.window for s in samples),
        p50_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        p99_ms=percentile(latencies, 0.99) * 1000,
        ok=len(latencies),
        errors=sum(s.errors for s in samples),
        mean_batch=inferred / batches if batches else float("nan"),
        server_cpu_ms=sum(s.cpu_s for s in samples) * 1000 / inferred if inferred else float("nan"),
    )


def model_scaling(
    model: pathlib.Path, threads: int, batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16)
) -> None:
    """ONNX Runtime alone, no HTTP: CPU and wall time per image at each batch size.

    If CPU per image does not fall with the batch size, there is no per-call overhead for dynamic
    batching to amortise on this hardware, and serving throughput cannot rise with it.
    """
    import numpy as np

    from kopilot.serving import detectors, settings

    detector = detectors.load(settings.ModelSettings(path=model, intra_op_threads=threads))
    info = detector.info
    print(
        f"ONNX Runtime alone ({detector.info.providers[0]}, intra-op threads {threads or 'auto'}):"
    )
    for size in batch_sizes:
        batch = np.random.default_rng(0).random(
            (size, 3, info.input_height, info.input_width), np.float32
        )
        detector.run(batch)
        runs = max(2, 32 // size)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(runs):
            detector.run(batch)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(
            f"  batch {size:2d}: CPU {cpu * 1000 / (runs * size):6.1f} ms/img  wall {wall * 1000 / (runs * size):6.1f} ms/img"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=pathlib.Path, default=None, help="ONNX detector (default: nudenet 320n)"
    )
    parser.add_argument(
        "--image", type=pathlib.Path, default=ROOT / "tests/serving/data/zidane.jpg"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per round not measured")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per point")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-queue-delay-ms", type=float, default=5.0)
    parser.add_argument(
        "--intra-op-threads", type=int, default=0, help="0: the server's default (usable CPUs - 1)"
    )
    parser.add_argument("--skip-model-scaling", action="store_true", help="skip ONNX Runtime alone")
    parser.add_argument("--log-dir", type=pathlib.Path, default=pathlib.Path("/tmp"))
    datasets.add_quick(
        parser, concurrency=[1, 4], warmup=0.5, duration=2.0, rounds=1, skip_model_scaling=True
    )
    args = parser.parse_args()
    datasets.apply_quick(parser, args)
    model = args.model or default_model()
    body = args.image.read_bytes()
    common = ["--intra-op-threads", str(args.intra_op_threads), "--max-queue-size", "256"]
    modes = {
        "batched": [
            "--max-batch-size",
            str(args.max_batch_size),
            "--max-queue-delay-ms",
            str(args.max_queue_delay_ms),
            *common,
        ],
        "unbatched": ["--max-batch-size", "1", "--max-queue-delay-ms", "0", *common],
    }
    print(f"model {model.name}, image {args.image.name} ({len(body)} bytes), cores {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f}, {args.rounds} x ({args.warmup:.0f}+{args.duration:.0f} s) per point")  # fmt: skip
    if not args.skip_model_scaling:
        model_scaling(model, args.intra_op_threads)
    print(f"batched: max batch {args.max_batch_size}, max queue delay {args.max_queue_delay_ms} ms; "
          f"unbatched: max batch 1; intra-op threads {args.intra_op_threads or 'auto (CPUs - 1)'}")  # fmt: skip
    points: dict[tuple[str, int], Point] = {}
    logs = {mode: args.log_dir / f"kopilot-serve-bench-{mode}.log" for mode in modes}
    # Both servers run side by side (an idle one uses no CPU) and the modes alternate within each
    # concurrency, so a change in the machine's other load hits both alike.
    with (
        server(model, modes["batched"], logs["batched"]) as batched,
        server(model, modes["unbatched"], logs["unbatched"]) as unbatched,
    ):
        targets = {"batched": batched, "unbatched": unbatched}
        for concurrency in args.concurrency:
            samples: dict[str, list[Sample]] = {mode: [] for mode in modes}
            for round_ in range(args.rounds):
                order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
                for mode in order:
                    url, pid = targets[mode]
                    samples[mode].append(
                        sample(
                            url,
                            pid,
                            body,
                            concurrency=concurrency,
                            warmup=args.warmup,
                            duration=args.duration,
                        )
                    )
            for mode in modes:
                point = summarize(mode, concurrency, samples[mode])
                points[(mode, concurrency)] = point
                print(
                    f"  {mode:9s} c={concurrency:3d}: {point.throughput:7.1f} req/s  p50 {point.p50_ms:7.1f} ms  "
                    f"p99 {point.p99_ms:7.1f} ms  mean batch {point.mean_batch:4.2f}  "
                    f"server CPU {point.server_cpu_ms:5.1f} ms/img  ok {point.ok} errors {point.errors}",
                    flush=True,
                )
    print()
    print(
        "concurrency | batched req/s | unbatched req/s | throughput x | batched p99 ms | "
        "unbatched p99 ms | p99 ratio | server CPU ms/img batched | unbatched"
    )
    print("---|---|---|---|---|---|---|---|---")
    for concurrency in args.concurrency:
        b, u = points[("batched", concurrency)], points[("unbatched", concurrency)]
        print(
            f"{concurrency} | {b.throughput:.1f} | {u.throughput:.1f} | {b.throughput / u.throughput:.2f} | "
            f"{b.p99_ms:.1f} | {u.p99_ms:.1f} | {b.p99_ms / u.p99_ms:.2f} | "
            f"{b.server_cpu_ms:.1f} | {u.server_cpu_ms:.1f}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""What `--metrics-auth` costs a scrape: open /metrics vs the guard with its cache vs without.

Starts the test control plane (RBAC on), a ServiceAccount bound to a ClusterRole like the chart's
`<release>-metrics-reader`, and kopilot's exporter on 127.0.0.1 three times: without a gate (the
baseline), with `kube.scraping.MetricsGuard` and its default cache, and with the cache off (every
scrape a TokenReview and a SubjectAccessReview). Each serves `--scrapes` sequential GETs of
/metrics with the token; prints the latency (median, p95) and the reviews sent, side by side.

    python bench/metrics_auth.py [--scrapes 200]

Needs the binaries from `bash scripts/setup.d/50-controlplane.sh` ($KOPILOT_CACHE respected).
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from kubernetes import config

from kopilot.kits import access, clocks
from kopilot.kube import apis, controlplane, retrying, scraping
from kopilot.metrics import exporter

REPO = Path(__file__).resolve().parents[1]
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def grant(api: apis.Api) -> str:
    """A ServiceAccount bound to get /metrics; its token."""
    api.post("/api/v1/namespaces", {"metadata": {"name": "bench"}}, "create namespace")
    api.post(
        "/api/v1/namespaces/bench/serviceaccounts",
        {"metadata": {"name": "prometheus"}},
        "create a service account",
    )
    rule = {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}
    api.post(f"{RBAC}/clusterroles", {"metadata": {"name": "reader"}, "rules": [rule]}, "role")
    api.post(
        f"{RBAC}/clusterrolebindings",
        {
            "metadata": {"name": "reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "bench"}],
        },
        "binding",
    )
    answer = api.post(
        "/api/v1/namespaces/bench/serviceaccounts/prometheus/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        "create a token",
    )
    return str(answer["status"]["token"])


def scrape(ex: exporter.Exporter, gate: access.Gate | None, token: str, n: int) -> list[float]:
    server = ex.serve("127.0.0.1", 0, gate=gate)
    try:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            out = []
            for _ in range(n):
                t = time.perf_counter()
                response = http.get(f"{server.url}/metrics")
                out.append(time.perf_counter() - t)
                if response.status_code != 200:
                    raise SystemExit(f"scrape answered {response.status_code}: {response.text}")
            return out
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scrapes", type=int, default=200, help="sequential scrapes per setting")
    parser.add_argument("--quick", action="store_true", help="A small run: 20 scrapes.")
    args = parser.parse_args()
    if args.quick:
        args.scrapes = min(args.scrapes, 20)
    cache = Path(os.environ.get("KOPILOT_CACHE", Path.home() / ".cache" / "kopilot"))
    binaries = controlplane.pinned_binaries(
        cache=cache, versions_file=REPO / "hack" / "controlplane" / "versions.env"
    )
    if binaries.missing():
        raise SystemExit(f"control-plane binaries missing in {binaries.bin_dir}")
    clock = clocks.WallClock()
    with (
        tempfile.TemporaryDirectory() as tmp,
        controlplane.running(binaries=binaries, workdir=Path(tmp), clock=clock) as cp,
    ):
        api_client = config.new_client_from_config(config_file=str(cp.kubeconfig))  # type: ignore[no-untyped-call]
        api = apis.Api(api_client, retrying.Retrier(clock, random.Random(0)))
        token = grant(api)
        ex = exporter.Exporter(clock)
        ex.observe_step(leader=True, duration_s=0.1, error=False)
        uncached = scraping.MetricsGuard(
            api, clock, cache=access.AnswerCache(clock, allowed_ttl_s=0, denied_ttl_s=0)
        )
        for _ in range(100):  # the new binding reaches the RBAC authorizer
            if uncached(f"Bearer {token}").verdict == "allowed":
                break
            time.sleep(0.1)
        uncached.reviews = 0
        cached = scraping.MetricsGuard(api, clock)
        rows = [
            ("open (no gate)", scrape(ex, None, token, args.scrapes), None),
            ("guard, cached", scrape(ex, cached, token, args.scrapes), cached),
            ("guard, no cache", scrape(ex, uncached, token, args.scrapes), uncached),
        ]
    base = statistics.median(rows[0][1])
    print(f"{args.scrapes} sequential scrapes of /metrics on 127.0.0.1 per setting")
    print(f"{'setting':<18} {'median ms':>10} {'p95 ms':>8} {'x open':>7} {'TokenReviews':>13}")
    for name, times, guard in rows:
        med = statistics.median(times)
        p95 = statistics.quantiles(times, n=20)[-1]
        reviews = "-" if guard is None else str(guard.reviews)
        print(f"{name:<18} {med * 1e3:10.2f} {p95 * 1e3:8.2f} {med / base:7.1f} {reviews:>13}")


if __name__ == "__main__":
    main()

"""`kopilot run`: the loop against a live cluster (KubeWorld), inside the guardrails."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kopilot.cli import checks
from kopilot.cli.app import app

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from kopilot.governance import audit, governor, guardrails, policyfile
    from kopilot.metrics import prometheus
    from kopilot.model import series


class PrometheusDemand:
    """The KubeWorld's demand source over the Prometheus client: one series per query."""

    def __init__(self, client: prometheus.Client) -> None:
        self.client = client

    def demand(self, query: str, *, start: float, end: float, step: float) -> series.Series:
        from kopilot.model import errors
        from kopilot.model import series as series_

        result = self.client.query_range(query, start=start, end=end, step=step)
        if not result.series:
            return series_.Series.empty()
        if len(result.series) > 1:
            raise errors.InvalidInputError(
                f"demand query {query!r} returned {len(result.series)} series; it must return "
                "one (wrap it in sum(...))"
            )
        return result.series[0].samples


@app.command()
def run(
    kubeconfig: Path | None = typer.Option(
        None,
        "--kubeconfig",
        help="Kubeconfig file. Default: the in-cluster service account when running in a pod, "
        "else $KUBECONFIG or ~/.kube/config.",
        dir_okay=False,
    ),
    context: str | None = typer.Option(None, "--context", help="Kubeconfig context to use."),
    prometheus_url: str | None = typer.Option(
        None,
        "--prometheus-url",
        help="Prometheus base URL: the services' `kopilot.io/demand-query` and the health "
        "signals (docs/signals.md). Without it no service has demand history (the scaling "
        "policy's data-quality gate falls back to its reactive rule and says so), and the "
        "health, idle and rightsizing families are off.",
        callback=checks.http_url,
    ),
    prometheus_timeout: float = typer.Option(
        10.0,
        "--prometheus-timeout",
        min=0.1,
        help="Seconds each Prometheus query may take; a slower answer counts as unreachable "
        "this cycle (no health action; the reason goes to the audit log).",
    ),
    signals_history: float = typer.Option(
        3600.0,
        "--signals-history",
        min=10.0,
        help="History of each health signal read per cycle (s; docs/signals.md).",
    ),
    signals_step: float = typer.Option(
        60.0,
        "--signals-step",
        min=1.0,
        help="Step of each health signal's range query (s): keep it at least the scrape "
        "interval; a replay on an accelerated clock (bench/live_faults.py) uses a few seconds.",
    ),
    advise_dir: Path | None = typer.Option(
        None,
        "--advise-dir",
        help="Also write the `kopilot advise` report (advise.json, .csv, .html) here, rebuilt "
        "every --advise-every from Prometheus (needs --prometheus-url). Default: not written.",
        file_okay=False,
    ),
    prices_file: Path | None = typer.Option(
        None,
        "--prices",
        help="YAML price book (as `kopilot advise --prices`) for the idle family's wasted cost "
        "and the advise report; default: OpenCost's on-prem prices.",
        exists=True,
        dir_okay=False,
    ),
    advise_every: float = typer.Option(
        21600.0, "--advise-every", min=60.0, help="Seconds between two advise reports."
    ),
    advise_window: float = typer.Option(
        86400.0, "--advise-window", min=3600.0, help="History each advise report covers (s)."
    ),
    interval: float = typer.Option(15.0, "--interval", min=1.0, help="Seconds between cycles."),
    once: bool = typer.Option(False, "--once", help="Run one cycle, then exit."),
    audit_log: Path = typer.Option(
        Path("kopilot-state/audit.jsonl"),
        "--audit-log",
        help="Append-only JSONL of every verdict. Read back on start so rate limits, cool-downs "
        "and blast-radius limits hold across restarts.",
        dir_okay=False,
    ),
    approvals_path: Path = typer.Option(
        Path("kopilot-state/approvals.jsonl"),
        "--approvals",
        help="Queue of actions waiting for a person (kinds the policy lists under "
        "`require_approval`); answer them with `kopilot approve ID --queue PATH`.",
        dir_okay=False,
    ),
    policy: Path | None = typer.Option(
        None,
        "--policy",
        help="Governance policy YAML (guardrails; see `kopilot policy --schema`). Its `dry_run` "
        "decides whether kopilot acts; without a file kopilot runs in dry-run. Re-read when it "
        "changes; a bad edit is reported and the policy in force is kept.",
        exists=True,
        dir_okay=False,
    ),
    no_dry_run: bool = typer.Option(
        False, "--no-dry-run", help="Act on the cluster (overrides the policy file's dry_run)."
    ),
    metrics_port: int = typer.Option(
        9102,
        "--metrics-port",
        min=-1,
        max=65535,
        help="Port for /metrics, /healthz, /readyz (-1: off, 0: any).",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1",
        "--metrics-host",
        help="Address the metrics server binds (loopback by default; 0.0.0.0 in a pod, which "
        "the Helm chart sets).",
    ),
    metrics_auth: bool = typer.Option(
        False,
        "--metrics-auth/--no-metrics-auth",
        help="/metrics only to a bearer token the API server accepts (TokenReview) whose user "
        "may get the non-resource URL /metrics (SubjectAccessReview): 401/403 otherwise. "
        "/healthz and /readyz stay open.",
    ),
    leader_elect: bool = typer.Option(
        True,
        "--leader-elect/--no-leader-elect",
        help="Act only while holding the coordination.k8s.io Lease (run several replicas safely).",
    ),
    lease_namespace: str = typer.Option(
        "kube-system", "--lease-namespace", help="Namespace of the leader-election Lease."
    ),
    lease_name: str = typer.Option(
        "kopilot", "--lease-name", help="Name of the leader-election Lease (one per kopilot)."
    ),
    identity: str | None = typer.Option(
        None,
        "--identity",
        help="This replica's name in the Lease and in Events (default: host-pid).",
    ),
    namespace: list[str] = typer.Option(
        [],
        "--namespace",
        "-n",
        help="Manage only the services in this namespace (repeat for several; default: all). "
        "Nodes are watched cluster-wide either way.",
    ),
    node_grace: float = typer.Option(
        60.0, "--node-grace", help="Seconds a node must be NotReady before kopilot cordons it."
    ),
    demand_step: float = typer.Option(15.0, "--demand-step", help="Demand query step (s)."),
    demand_history: float = typer.Option(
        3600.0, "--demand-history", help="Demand history each cycle reads (s)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every action and problem."),
) -> None:
    """Run kopilot against a live Kubernetes cluster.

    Every --interval seconds: snapshot the cluster from watch caches (nodes, pods, and the
    Deployments/StatefulSets a kopilot.io ModelService targets or annotated
    `kopilot.io/managed: "true"`), read each service's demand
    and the health signals (memory, latency, errors, GPU XIDs...) from Prometheus, let the
    families decide (scaling: predictive, ahead of cold starts; readiness: cordon nodes that stay
    NotReady; health: restart a leaking pod before its memory limit, cordon and drain a node
    with a failing GPU, alert on anomalies; mig: relabel MIG nodes with a named GPU-operator
    config after evicting their GPU pods; idle: scale idle GPU services to zero; rightsizing:
    recommend requests as Events), pass every action through the governor, record every
    verdict in the audit log, and apply what is approved: the scale subresource, cordons,
    evictions that respect PodDisruptionBudgets, Events and `kopilot.io/last-action` annotations
    saying why. The policy file's `families:` switches each family on or off and bounds it;
    health's restarts and cordons, and mig's repartitions, wait for `kopilot approve` by default
    (docs/live.md, docs/live-families.md).

    Dry-run by default: nothing changes until --no-dry-run or a policy file with `dry_run: false`.
    With leader election (the default) only the replica holding the Lease acts.
    """
    import logging
    import signal
    import threading

    from rich.console import Console

    from kopilot.cost import prices
    from kopilot.governance import approvals, audit, families, governor, policyfile
    from kopilot.health import monitors, readiness
    from kopilot.kits import clocks, randomness
    from kopilot.kube import apis, leases, running, scraping, worlds
    from kopilot.loop import cycles
    from kopilot.metrics import exporter as exporter_
    from kopilot.metrics import prometheus, signals
    from kopilot.model import cluster, errors
    from kopilot.report import advice
    from kopilot.scaling import planning
    from kopilot.scheduling import repartitioning

    console = Console(stderr=True)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def fail(message: str, code: int = 2) -> typer.Exit:
        return checks.fail(message, code)

    from dataclasses import replace

    try:
        holder = policyfile.PolicyHolder(policy)
    except errors.InvalidInputError as e:
        raise fail(str(e)) from e

    def rails_of(held: policyfile.Policy) -> guardrails.Guardrails:
        return replace(held.rails, dry_run=False) if no_dry_run else held.rails

    rails = rails_of(holder.policy)
    try:
        book = (
            prices.parse(prices_file.read_text(), source=str(prices_file))
            if prices_file is not None
            else prices.PriceBook()
        )
    except UnicodeDecodeError as e:
        raise fail(
            f"price book {prices_file}: not UTF-8 text ({e.reason} at byte {e.start})"
        ) from e
    except (errors.InvalidInputError, OSError) as e:
        raise fail(str(e)) from e
    if advise_dir is not None and not prometheus_url:
        raise fail("--advise-dir needs --prometheus-url (the report is read from Prometheus)")
    policy_mtime = policy.stat().st_mtime if policy is not None else 0.0

    try:
        api_client = apis.client_for(
            kubeconfig, context=context, in_cluster=bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        )
    except errors.InvalidInputError as e:
        raise fail(str(e)) from e

    clock = clocks.WallClock()
    me = identity or f"{socket.gethostname()}-{os.getpid()}"
    prom = prometheus.Client(prometheus_url, timeout=prometheus_timeout) if prometheus_url else None
    exporter = exporter_.Exporter(clock, stale_after_s=max(300.0, 10 * interval))
    metrics_server = None
    if metrics_port >= 0:
        try:
            gate = (
                scraping.guard_for(
                    api_client, clock=clock, rng=randomness.rng(os.getpid(), "metrics-auth")
                )
                if metrics_auth
                else None
            )
            metrics_server = exporter.serve(metrics_host, metrics_port, gate=gate)
        except OSError as e:
            raise fail(f"cannot serve metrics on {metrics_host}:{metrics_port}: {e}") from e
        guarded = " (bearer token + RBAC)" if metrics_auth else ""
        console.print(f"metrics: {metrics_server.url}/metrics{guarded}  health: /healthz /readyz")

    elector: leases.LeaseElector | None = None
    world = worlds.KubeWorld.connect(
        api_client,
        clock=clock,
        rng=randomness.rng(os.getpid(), "kube-retries"),
        demand=PrometheusDemand(prom) if prom is not None else None,
        signals=signals.Reader(
            prom, signals.Settings(history_s=signals_history, step_s=signals_step)
        )
        if prom is not None
        else None,
        settings=worlds.Settings(
            identity=me,
            demand_history_s=demand_history,
            demand_step_s=demand_step,
            namespaces=frozenset(namespace) if namespace else None,
        ),
    )
    if leader_elect:
        lease_settings = leases.LeaseSettings(namespace=lease_namespace, name=lease_name)
        elector = leases.LeaseElector(world.api, identity=me, clock=clock, settings=lease_settings)
        world.may_act = elector.is_leader
    slots = [
        cycles.PolicySlot(policy=planning.ForecastPolicy(), family=families.SCALING),
        cycles.PolicySlot(
            policy=readiness.ReadinessPolicy(grace_s=node_grace), family=families.READINESS
        ),
    ]
    health = cycles.PolicySlot(
        policy=monitors.HealthPolicy(settings=holder.policy.health),
        family=families.HEALTH,
        needs=frozenset({cluster.METRICS}),
    )
    idle = cycles.PolicySlot(
        policy=replace(holder.policy.idle, book=book),
        family=families.IDLE,
        needs=frozenset({cluster.METRICS}),
    )
    sizing = cycles.PolicySlot(
        policy=holder.policy.rightsizing,
        family=families.RIGHTSIZING,
        needs=frozenset({cluster.METRICS}),
    )
    slots.append(cycles.PolicySlot(policy=repartitioning.RepartitionPolicy(), family=families.MIG))
    if prom is not None:
        # Without a Prometheus there are no signals at all: that is how kopilot was started,
        # not a fault of this cycle, so it is said once here instead of audited every cycle.
        slots += [health, idle, sizing]
    adviser = (
        advice.LiveAdvice(
            client=prom,
            out=advise_dir,
            every_s=advise_every,
            window_s=advise_window,
            namespace=namespace[0] if len(namespace) == 1 else None,
            book=book,
        )
        if advise_dir is not None and prom is not None
        else None
    )
    gov = governor.Governor(rails)
    try:
        log = audit.AuditLog(audit_log, fsync=True)
        holder.record(log, clock.now())
        queue = approvals.ApprovalQueue(approvals_path)
    except errors.KopilotError as e:
        raise fail(str(e)) from e
    for note in [*log.repairs, *queue.repairs, *queue.skipped]:
        console.print(f"[yellow]note:[/yellow] {note}")
    runner = running.Runner(
        world,
        slots,
        gov,
        log,
        clock=clock,
        elector=elector,
        resume_max_age_s=3 * interval,
        queue=queue,
        approval_ttl_s=holder.policy.approval_ttl_s,
    )

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    mode = "dry-run" if rails.dry_run else "acting"
    console.print(
        f"kopilot run as {me}: {mode}; interval {interval:g} s; audit log {audit_log}; "
        f"demand and signals from {prometheus_url or 'nowhere (no --prometheus-url)'}"
    )
    if prom is None:
        console.print(
            "health, idle and rightsizing families off: they need the signals of --prometheus-url"
        )
    code = 0
    try:
        try:
            with world:
                exporter.set_ready(True)
                while not stopping.is_set():
                    began = clock.now()
                    if policy is not None:
                        seen = _reload_policy(
                            console, holder, policy, policy_mtime, gov, rails_of, log, began
                        )
                        if seen != policy_mtime:
                            health.policy = monitors.HealthPolicy(settings=holder.policy.health)
                            idle.policy = replace(holder.policy.idle, book=book)
                            sizing.policy = holder.policy.rightsizing
                        policy_mtime = seen
                    step = runner.step()
                    judged = step.report.judged if step.report else ()
                    exporter.observe_step(
                        leader=step.leader,
                        duration_s=step.duration_s,
                        error=step.error is not None,
                        judged=[(v.action.kind, str(v.outcome)) for v in judged],
                        failed=[kind for kind, ok in step.applied if not ok],
                        problems=len(step.problems),
                    )
                    _print_step(console, step, verbose)
                    if adviser is not None and step.leader and adviser.due(clock.now()):
                        console.print(adviser.write(clock.now()))
                    if once:
                        code = 1 if step.error else 0
                        break
                    stopping.wait(max(0.0, interval - (clock.now() - began)))
        except errors.KopilotError as e:
            raise fail(str(e), 1) from e
    finally:
        runner.release()
        if metrics_server is not None:
            metrics_server.close()
        if prom is not None:
            prom.close()
        api_client.close()  # type: ignore[no-untyped-call]
    raise typer.Exit(code)


def _reload_policy(
    console: Console,
    holder: policyfile.PolicyHolder,
    path: Path,
    mtime: float,
    gov: governor.Governor,
    rails_of: Callable[[policyfile.Policy], guardrails.Guardrails],
    log: audit.AuditLog,
    at: float,
) -> float:
    """Re-read the policy file if it changed; a bad edit keeps the policy in force. Either way
    the reload is written to the audit log."""
    try:
        now = path.stat().st_mtime
    except OSError as e:
        console.print(f"[yellow]policy {path}: cannot read it ({e}); keeping the one in force")
        return mtime
    if now == mtime:
        return mtime
    if holder.reload(log, at):
        gov.rails = rails_of(holder.policy)
        mode = "dry-run" if gov.rails.dry_run else "acting"
        console.print(f"policy {path} reloaded: {mode}")
    else:
        console.print(f"[yellow]policy not reloaded:[/yellow] {holder.last_error}")
    return now


def _print_step(console: object, step: object, verbose: bool) -> None:
    from rich.console import Console

    from kopilot.governance import verdicts
    from kopilot.kube import running

    assert isinstance(console, Console) and isinstance(step, running.Step)
    stamp = f"[dim]{step.time:.0f}[/dim]"
    for line in step.resumed:
        console.print(f"{stamp} resumed {line}")
    if not step.leader:
        console.print(f"{stamp} follower: another replica holds the lease")
        return
    if step.error:
        console.print(f"{stamp} [yellow]cycle failed:[/yellow] {step.error}")
        return
    report = step.report
    if report is None:
        return
    counts = ", ".join(f"{o}: {report.count(o)}" for o in verdicts.Outcome if report.count(o))
    console.print(
        f"{stamp} cycle {step.duration_s * 1000:.0f} ms; {counts or 'no actions'}"
        + (f"; [red]{len(report.failures)} failed[/red]" if report.failures else "")
    )
    for failure in report.failures:
        console.print(f"  [red]failed:[/red] {failure}")
    for skipped in report.skipped:
        console.print(f"  [yellow]skipped:[/yellow] {skipped}")
    if verbose:
        for v in report.judged:
            console.print(f"  {v.outcome}: {v.action.target} - {v.reason}")
        for problem in step.problems:
            console.print(f"  [yellow]problem:[/yellow] {problem}")

"""`kopilot approve`, `kopilot audit` and `kopilot policy`: the people's side of the guardrails."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kopilot.cli import checks
from kopilot.cli.app import app

if TYPE_CHECKING:
    from kopilot.governance import approvals

DEFAULT_STATE = Path("kopilot-state")


@app.command()
def approve(
    request_id: str | None = typer.Argument(
        None,
        help="The ID printed in the audit log (`run kopilot approve ID`). Omit to list requests.",
    ),
    reject: bool = typer.Option(
        False, "--reject", help="Refuse the action instead of approving it."
    ),
    queue: Path = typer.Option(
        DEFAULT_STATE / "approvals.jsonl",
        "--queue",
        help="The approval queue the controller writes.",
    ),
    by: str = typer.Option(
        "",
        "--by",
        help="A note recorded with the answer (a ticket, a reason). Not an identity: who answers "
        "is the OS user running this command, or in a cluster the owner of --token-file.",
    ),
    digest: str | None = typer.Option(
        None,
        "--digest",
        help="The digest of the action you reviewed (see the listing): the answer is refused if "
        "the request proposes anything else.",
    ),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help="In a cluster: a file holding the approver's bearer token (e.g. `kubectl create "
        "token NAME --audience kopilot`). The API server checks whose it is (TokenReview) and "
        "that they may `approve` `decisions.kopilot.io` (SubjectAccessReview).",
    ),
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", help="kopilot's own cluster credentials for the checks."
    ),
    context: str | None = typer.Option(None, "--context", help="The kubeconfig context."),
) -> None:
    """Approve (or --reject) an action that waits for a person, or list the waiting ones.

    Actions whose kind the governance policy lists under `require_approval` are queued instead of
    run. An approval names a request the controller queued and the digest of its action; it never
    carries an action of its own. Outside a cluster the approver is the OS user running this
    command; in a cluster, the user of --token-file, as the API server authenticates and
    authorizes it. An approved action still passes every other guardrail when the controller
    applies it on its next cycle; a request nobody answers expires after `approval_ttl_s`.
    """
    from rich.console import Console
    from rich.table import Table

    from kopilot.governance import approvals
    from kopilot.model import errors

    console = Console()
    err = Console(stderr=True)
    now = time.time()
    try:
        q = approvals.ApprovalQueue(queue)
        listed = q.requests(now)
    except errors.InvalidInputError as e:
        raise checks.fail(str(e)) from e
    for note in [*q.repairs, *q.skipped]:
        err.print(f"[yellow]note:[/yellow] {note}", soft_wrap=True)
    if request_id is None:
        table = Table(title=f"approval requests in {queue}")
        for col in ("id", "state", "requested", "action", "digest", "by"):
            table.add_column(col)
        for r in sorted(listed.values(), key=lambda r: r.time):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.time))
            who = f"{r.by} ({r.via})" if r.by else ""
            table.add_row(r.id, r.state, stamp, r.summary, r.digest[:19], who)
        console.print(table)
        return
    try:
        approver = _approver(q, request_id, now, by, token_file, kubeconfig, context)
        r = q.decide(request_id, approve=not reject, approver=approver, now=now, digest=digest)
    except errors.KopilotError as e:
        raise checks.fail(str(e)) from e
    console.print(f"{r.id}: {r.state} by {r.by} ({r.via}) - {r.summary}")


def _approver(
    q: approvals.ApprovalQueue,
    rid: str,
    now: float,
    note: str,
    token_file: Path | None,
    kubeconfig: Path | None,
    context: str | None,
) -> approvals.Approver:
    """The verified identity of the person answering (`kube.approving.identify`)."""
    import contextlib
    import os

    from kopilot.kits import clocks, randomness
    from kopilot.kube import apis, approving, retrying
    from kopilot.model import errors

    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    request = q.pending(rid, now)
    token: str | None = None
    with contextlib.ExitStack() as stack:
        api: apis.Api | None = None
        if token_file is not None:
            try:
                token = token_file.read_text(encoding="utf-8")
            except OSError as e:
                raise errors.InvalidInputError(f"--token-file {token_file}: {e.strerror}") from e
            client = apis.client_for(kubeconfig, context=context, in_cluster=in_cluster)
            stack.callback(client.close)
            rng = randomness.rng(os.getpid(), "approve")
            backoff = retrying.Backoff(attempts=3)
            api = apis.Api(client, retrying.Retrier(clocks.WallClock(), rng, backoff))
        check = approving.identify(request, token=token, api=api, in_cluster=in_cluster, note=note)
    if check.approver is None:
        raise errors.InvalidInputError(f"not allowed: {check.reason}")
    return check.approver


@app.command()
def audit(
    log: Path = typer.Option(
        DEFAULT_STATE / "audit.jsonl", "--log", "-l", help="The audit log (JSONL)."
    ),
    kind: str | None = typer.Option(None, help="Only this action kind (Scale, Cordon, ...)."),
    outcome: str | None = typer.Option(
        None, help="Only this outcome: approved, dry-run, refused, pending-approval."
    ),
    target: str | None = typer.Option(
        None, help="Only targets containing this text (e.g. a node or service name)."
    ),
    since: float | None = typer.Option(
        None, help="Only records at or after this time (seconds, the log's clock)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print matching records as JSON lines."),
    limit: int = typer.Option(50, min=0, help="At most this many records (the newest)."),
) -> None:
    """Query the append-only audit log: every decision, approved or refused, with its reason."""
    from rich.console import Console
    from rich.table import Table

    from kopilot.governance import audit as audit_log
    from kopilot.model import errors

    console = Console()
    err = Console(stderr=True)
    if not log.exists():
        raise checks.fail(
            f"no audit log at {log}; pass --log PATH (e.g. kopilot-report/audit-kopilot.jsonl)"
        )
    torn: list[audit_log.TornRecord] = []
    try:
        records = [
            r
            for r in audit_log.read(log, torn=torn)
            if (kind is None or (r.get("action") or {}).get("kind") == kind)
            and (outcome is None or r["outcome"] == outcome)
            and (target is None or target in str((r.get("action") or {}).get("target", "")))
            and (since is None or r["time"] >= since)
        ][-limit:]
    except (errors.InvalidInputError, KeyError, TypeError) as e:
        raise checks.fail(f"{log}: {e}") from e
    if torn:
        err.print(
            f"[yellow]note:[/yellow] line {torn[0].line} is a torn record (a crash mid-write); skipped"
        )
    if as_json:
        for r in records:
            typer.echo(json.dumps(r, sort_keys=True))
        return
    table = Table(title=f"{len(records)} records from {log}")
    for col in ("seq", "time", "outcome", "action", "why"):
        table.add_column(col)
    for r in records:
        table.add_row(str(r["seq"]), f"{r['time']:.0f}", r["outcome"], r["summary"], r["verdict"])
    console.print(table)


@app.command()
def policy(
    path: Path | None = typer.Argument(None, help="A governance policy YAML file to check."),
    schema: bool = typer.Option(False, "--schema", help="Print the policy file's JSON schema."),
) -> None:
    """Check a governance policy file (guardrails), or print its schema.

    Exit 0 and a summary when the file is valid; exit 2 with the field and the reason when not.
    """
    from rich.console import Console

    from kopilot.governance import policyfile
    from kopilot.model import errors

    console = Console()
    if schema:
        typer.echo(json.dumps(policyfile.json_schema(), indent=2, sort_keys=True))
        return
    if path is None:
        raise checks.fail("give a policy file to check, or --schema")
    try:
        p = policyfile.load(path)
    except errors.InvalidInputError as e:
        raise checks.fail(str(e)) from e
    r = p.rails
    console.print(
        f"{path}: valid. dry-run={'on' if r.dry_run else 'off'}, "
        f"namespaces={sorted(r.allowed_namespaces) if r.allowed_namespaces is not None else 'all'}, "
        f"kinds={sorted(r.allowed_kinds) if r.allowed_kinds is not None else 'all'}, "
        f"max cordoned nodes={r.max_cordoned_nodes}, max disrupted={r.max_disrupted_fraction:.0%}, "
        f"needs approval={sorted(r.require_approval) or 'nothing'}"
    )
    for name, family in r.families.items():
        state = "on" if family.enabled else "off"
        bound = f", max {family.max_actions} per window" if family.max_actions is not None else ""
        asks = sorted(family.require_approval) or "nothing"
        console.print(f"  family {name}: {state}{bound}, needs approval={asks}")

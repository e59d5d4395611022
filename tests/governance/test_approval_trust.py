"""An approval only ever approves what a policy proposed; a damaged queue never stops anyone."""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kopilot.cli import app
from kopilot.governance import approvals, audit, digests, governor, guardrails
from kopilot.loop import cycles
from kopilot.model import actions, errors
from tests.governance.test_approvals import CordonOnce, NodeWorld

ME = approvals.Approver(name="alice", via="os-user")


def _acting(tmp_path: Path) -> tuple[approvals.ApprovalQueue, audit.AuditLog, governor.Governor]:
    rails = guardrails.Guardrails(dry_run=False, require_approval=frozenset({"Cordon"}))
    return (
        approvals.ApprovalQueue(tmp_path / "approvals.jsonl"),
        audit.AuditLog(tmp_path / "audit.jsonl"),
        governor.Governor(rails),
    )


def _append(path: Path, *lines: str) -> None:
    with path.open("a") as f:
        f.write("".join(line + "\n" for line in lines))


def _forged_request(node: str, t: float) -> dict[str, object]:
    record = actions.to_record(actions.Cordon(node=node, reason="forged"))
    return {
        "event": "requested",
        "id": digests.request_id(record, t),
        "time": t,
        "expires": t + 3600,
        "action": record,
        "digest": digests.action_digest(record),
        "summary": f"cordon {node}",
    }


def test_hand_written_request_and_approval_cordon_nothing(tmp_path: Path) -> None:
    """Two lines in the queue, consistent with each other, but no policy proposed the action."""
    q, log, gov = _acting(tmp_path)
    world = NodeWorld()
    t = 100.0
    req = _forged_request("gpu-2", t)
    approval = {"event": "approved", "id": req["id"], "digest": req["digest"], "time": t + 1}
    _append(q.path, json.dumps(req), json.dumps({**approval, "by": "mallory"}))
    report = cycles.run_cycle(world, [], gov, log, t + 2, queue=q)
    assert world.applied == []
    assert any("holds no proposal" in f for f in report.failures)
    assert approvals.ApprovalQueue(q.path).requests(t + 3)[str(req["id"])].state == "ignored"


def test_an_approval_naming_another_digest_approves_nothing(tmp_path: Path) -> None:
    q, log, gov = _acting(tmp_path)
    world = NodeWorld()
    cycles.run_cycle(world, [cycles.PolicySlot(CordonOnce("gpu-1"))], gov, log, 0.0, queue=q)
    [req] = q.requests(1.0).values()
    other = digests.action_digest(actions.to_record(actions.Cordon(node="gpu-2", reason="x")))
    line = {"event": "approved", "id": req.id, "digest": other, "time": 1.0, "by": "mallory"}
    _append(q.path, json.dumps(line))
    assert q.requests(2.0)[req.id].state == "pending"
    assert any("names another action" in s.reason for s in q.skipped)
    with pytest.raises(errors.InvalidInputError, match="different action"):
        q.decide(req.id, approve=True, approver=ME, now=2.0, digest=other)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("[]", "not a JSON object"),
        ('{"event": "requested", "id": "abc"}', "without 'time'"),
        ('{"event": "approved"}', "names no request"),
        (
            '{"event": "requested", "id": 7, "time": 1, "expires": 2, "action": {}, '
            '"summary": "", "digest": ""}',
            "'id' is not a str",
        ),
        ("not json at all", "not JSON"),
    ],
)
def test_a_damaged_queue_line_is_skipped_with_file_and_line(
    tmp_path: Path, line: str, why: str
) -> None:
    q, log, gov = _acting(tmp_path)
    world = NodeWorld()
    slot = cycles.PolicySlot(CordonOnce("gpu-1"))
    _append(q.path, line)
    cycles.run_cycle(world, [slot], gov, log, 0.0, queue=q)  # did not crash
    reopened = approvals.ApprovalQueue(q.path)
    [rid] = reopened.requests(1.0)
    [skipped] = reopened.skipped
    assert skipped.line == 1 and why in skipped.reason and str(q.path) in str(skipped)
    reopened.decide(rid, approve=True, approver=ME, now=1.0)
    cycles.run_cycle(world, [slot], gov, log, 2.0, queue=reopened)
    assert [a.node for a in world.applied if isinstance(a, actions.Cordon)] == ["gpu-1"]
    listed = CliRunner().invoke(app, ["approve", "--queue", str(q.path)], env={"COLUMNS": "500"})
    assert listed.exit_code == 0 and f"{q.path}, line 1: " in listed.output and why in listed.output


def test_an_approval_after_a_torn_line_is_not_lost(tmp_path: Path) -> None:
    q, log, gov = _acting(tmp_path)
    world = NodeWorld()
    slot = cycles.PolicySlot(CordonOnce("gpu-1"))
    cycles.run_cycle(world, [slot], gov, log, 0.0, queue=q)
    [rid] = q.requests(1.0)
    with q.path.open("ab") as f:
        f.write(b'{"event": "done", "id": "')  # a writer died mid-line
    approvals.ApprovalQueue(q.path).decide(rid, approve=True, approver=ME, now=1.0)
    cycles.run_cycle(world, [slot], gov, log, 2.0, queue=approvals.ApprovalQueue(q.path))
    assert [a.node for a in world.applied if isinstance(a, actions.Cordon)] == ["gpu-1"]
    assert (tmp_path / "approvals.jsonl.torn").exists()


def test_the_approver_is_the_os_user_and_by_is_only_a_note(tmp_path: Path) -> None:
    q, log, gov = _acting(tmp_path)
    cycles.run_cycle(NodeWorld(), [cycles.PolicySlot(CordonOnce("gpu-1"))], gov, log, 0.0, queue=q)
    now = time.time()
    q2 = approvals.ApprovalQueue(q.path)
    # the request was made at t=0: give it a fresh one at the wall clock, as a controller would
    [v] = gov.review([actions.Cordon(node="gpu-2", reason="x")], NodeWorld().snapshot(now), now)
    rid = q2.request(v, ttl_s=600)
    result = CliRunner().invoke(app, ["approve", rid, "--queue", str(q.path), "--by", "the CEO"])
    assert result.exit_code == 0, result.output
    r = approvals.ApprovalQueue(q.path).requests(now)[rid]
    assert (r.state, r.by, r.via, r.note) == ("approved", getpass.getuser(), "os-user", "the CEO")


def test_in_a_cluster_approving_needs_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    q, _, gov = _acting(tmp_path)
    now = time.time()
    [v] = gov.review([actions.Cordon(node="gpu-2", reason="x")], NodeWorld().snapshot(now), now)
    rid = q.request(v, ttl_s=600)
    result = CliRunner().invoke(app, ["approve", rid, "--queue", str(q.path)])
    assert result.exit_code == 2 and "--token-file" in result.output
    assert approvals.ApprovalQueue(q.path).requests(now)[rid].state == "pending"


def test_the_runner_steps_over_a_damaged_queue_on_every_restart(tmp_path: Path) -> None:
    """Before: `[]` in the queue crashed `Runner.step`, and again after every restart."""
    from kopilot.kits import clocks
    from kopilot.kube import running

    q, log, gov = _acting(tmp_path)
    _append(q.path, "[]", '{"event": "approved", "id": 1}')
    for restart in range(2):
        runner = running.Runner(
            NodeWorld(),
            [cycles.PolicySlot(CordonOnce("gpu-1"))],
            gov,
            audit.AuditLog(log.path),
            clock=clocks.VirtualClock(),
            queue=approvals.ApprovalQueue(q.path),
        )
        step = runner.step(float(restart))
        assert step.error is None and step.report is not None

"""Restart safety without a cluster: decision ids survive the audit log; the ledger is restored;
only the last cycle's approved decisions are replayed, and only while recent."""

from __future__ import annotations

from pathlib import Path

from kopilot.governance import audit, governor, guardrails, verdicts
from kopilot.kube import resuming
from kopilot.model import actions, cluster


def scale(replicas: int, service: str = "ml/web") -> actions.Scale:
    return actions.Scale(
        service=service,
        replicas=replicas,
        current=1,
        reason="forecast 3.2 req/s",
        evidence={"forecast_rps": 3.2},
        policy="kopilot",
    )


def cordon(node: str) -> actions.Cordon:
    return actions.Cordon(node=node, reason="NotReady", evidence={"not_ready_s": 61.0})


def write(path: Path, entries: list[tuple[actions.Action, verdicts.Outcome, float]]) -> None:
    log = audit.AuditLog(path)
    for action, outcome, t in entries:
        log.append(verdicts.Verdict(action=action, outcome=outcome, reason="r", time=t))


def test_decision_id_is_the_same_when_read_back_from_the_audit_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    t = 1_700_000_123.4567
    write(path, [(scale(3), verdicts.Outcome.APPROVED, t)])
    [record] = audit.read(path)
    assert resuming.record_decision_id(record) == resuming.decision_id(scale(3), t)
    assert resuming.decision_id(scale(3), t) != resuming.decision_id(scale(4), t)
    assert resuming.decision_id(scale(3), t) != resuming.decision_id(scale(3), t + 15)


def test_ledger_restored_from_the_log_keeps_the_limits_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write(
        path,
        [
            (cordon("n1"), verdicts.Outcome.APPROVED, 100.0),
            (cordon("n2"), verdicts.Outcome.REFUSED, 100.0),
            (scale(3), verdicts.Outcome.DRY_RUN, 100.0),
        ],
    )
    entries = resuming.ledger_entries(audit.read(path))
    assert [(e.kind, e.target) for e in entries] == [
        ("Cordon", "node/n1"),
        ("Scale", "service/ml/web"),
    ]
    assert entries[1].service == "ml/web"
    rails = guardrails.Guardrails(dry_run=False, cooldown_s={"Cordon": 900.0})
    snapshot = cluster.ClusterSnapshot(time=200.0)
    fresh = governor.Governor(rails)
    [v] = fresh.review([cordon("n1")], snapshot, 200.0)
    assert v.outcome is verdicts.Outcome.APPROVED  # a forgetful governor would cordon again
    restored = governor.Governor(rails)
    restored.remember(entries)
    [v] = restored.review([cordon("n1")], snapshot, 200.0)
    assert v.outcome is verdicts.Outcome.REFUSED
    assert "cool-down" in v.reason


def test_only_the_last_approved_cycle_is_unfinished_and_only_while_recent(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write(
        path,
        [
            (scale(2), verdicts.Outcome.APPROVED, 100.0),
            (scale(3), verdicts.Outcome.APPROVED, 115.0),
            (cordon("n1"), verdicts.Outcome.APPROVED, 115.0),
            (cordon("n2"), verdicts.Outcome.REFUSED, 115.0),
            (
                actions.Alert(subject="node/n1", summary="s", reason="r"),
                verdicts.Outcome.APPROVED,
                115.0,
            ),
            (scale(9), verdicts.Outcome.DRY_RUN, 130.0),
        ],
    )
    records = list(audit.read(path))
    pending = resuming.unfinished(records, 140.0, max_age_s=45.0)
    assert [(p.action.kind, p.action.target, p.time) for p in pending] == [
        ("Scale", "service/ml/web", 115.0),
        ("Cordon", "node/n1", 115.0),
    ]
    assert pending[0].action == scale(3)
    assert pending[0].decision == resuming.decision_id(scale(3), 115.0)
    assert resuming.unfinished(records, 115.0 + 46.0, max_age_s=45.0) == []
    assert resuming.unfinished([], 0.0, max_age_s=45.0) == []

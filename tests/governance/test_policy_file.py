"""The governance policy file: schema-checked; a bad file names the field and the old policy stays."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydantic
import pytest

from kopilot.governance import audit, policyfile
from kopilot.model import errors


def test_a_full_policy_maps_onto_the_guardrails(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "dry_run: false\nallowed_namespaces: [prod]\nmax_per_kind: {Cordon: 1}\n"
        "max_cordoned_nodes: 3\nrequire_approval: [Cordon]\napproval_ttl_s: 60\n"
    )
    p = policyfile.load(path)
    assert not p.rails.dry_run
    assert p.rails.allowed_namespaces == frozenset({"prod"})
    assert p.rails.max_per_kind["Cordon"] == 1 and p.rails.max_per_kind["Scale"] == 1000
    assert p.rails.require_approval == frozenset({"Cordon"})
    assert p.approval_ttl_s == 60


def test_an_empty_file_is_the_cautious_default(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("")
    assert policyfile.load(path).rails.dry_run


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("max_cordoned_nodes: -1\n", "max_cordoned_nodes"),
        ("require_approval: [Nuke]\n", "require_approval"),
        ("max_per_kind: {Cordon: -2}\n", "max_per_kind"),
        ("max_disrupted_fraction: 2\n", "max_disrupted_fraction"),
        ("dryrun: true\n", "dryrun"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(errors.InvalidInputError, match=field):
        policyfile.load(path)


def test_a_bad_reload_keeps_the_policy_in_force(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("dry_run: false\nmax_cordoned_nodes: 1\n")
    holder = policyfile.PolicyHolder(path)
    path.write_text("max_cordoned_nodes: lots\n")
    assert holder.reload() is False
    assert holder.policy.rails.max_cordoned_nodes == 1 and not holder.policy.rails.dry_run
    assert holder.last_error is not None and "max_cordoned_nodes" in holder.last_error
    path.write_text("max_cordoned_nodes: 4\n")
    assert holder.reload() is True and holder.policy.rails.max_cordoned_nodes == 4


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('dry_run: "no"\n', "dry_run"),
        ("dry_run: 0\n", "dry_run"),
        ("dry_run: off\n", "dry_run"),
        ("dry_run: no\n", "dry_run"),
        ("cooldown_s: {Restart: .nan}\n", "cooldown_s"),
        ("cooldown_s: {Cordon: .inf}\n", "cooldown_s"),
        ("window_s: .inf\n", "window_s"),
        ("max_disrupted_fraction: .nan\n", "max_disrupted_fraction"),
        ("approval_ttl_s: .inf\n", "approval_ttl_s"),
        ("max_cordoned_nodes: 1e6\n", "max_cordoned_nodes"),
        ("max_cordoned_nodes: 1000000\n", "max_cordoned_nodes"),
        ("max_cordoned_nodes: 2.0\n", "max_cordoned_nodes"),
        ("max_per_kind: {Cordon: 1.0e+9}\n", "max_per_kind"),
        ("max_per_kind: {Cordon: true}\n", "max_per_kind"),
        ("window_s: 1.0e+9\n", "window_s"),
        ('window_s: "600"\n', "window_s"),
    ],
)
def test_loose_values_are_refused(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(errors.InvalidInputError, match=field):
        policyfile.load(path)


def test_sections_inherit_the_strict_config() -> None:
    """A new section (another engineer's `families:`) gets the same rules by subclassing."""

    class Section(policyfile.StrictSchema):
        on: bool = False
        share: float = 0.0

    for bad in ({"on": "no"}, {"on": 0}, {"share": float("nan")}, {"share": float("inf")}):
        with pytest.raises(pydantic.ValidationError):
            Section.model_validate(bad)
    assert Section.model_validate({"on": True, "share": 1}).share == 1.0


def test_every_reload_is_audited_with_a_digest(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("max_cordoned_nodes: 1\n")
    holder = policyfile.PolicyHolder(path)
    log = audit.AuditLog(tmp_path / "audit.jsonl")
    holder.record(log, 0.0)
    path.write_text("dry_run: false\nmax_cordoned_nodes: 5\ncooldown_s: {Cordon: 0}\n")
    assert holder.reload(log, 10.0)
    path.write_text("dry_run: off\n")
    assert not holder.reload(log, 20.0)
    path.write_text("dry_run: false\nmax_cordoned_nodes: 1\n")
    assert holder.reload(log, 30.0)
    recs = list(audit.read(tmp_path / "audit.jsonl"))
    assert [r["outcome"] for r in recs] == [
        "policy-loaded",
        "policy-widened",
        "policy-refused",
        "policy-reloaded",
    ]
    widened = recs[1]["policy"]["widened"]
    assert "dry_run: on -> off (kopilot now acts)" in widened
    assert "max_cordoned_nodes: 1 -> 5" in widened and "cooldown_s.Cordon: 900 -> 0" in widened
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert recs[3]["policy"]["digest"] == digest
    assert "dry_run" in recs[2]["policy"]["error"]
    assert recs[2]["policy"]["in_force"] == recs[1]["policy"]["digest"]

"""The governance policy file: schema-checked; a bad file names the field and the old policy stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from kopilot.governance import policyfile
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

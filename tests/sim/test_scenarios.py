"""Scenario files: a bad one is rejected with the field that is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from kopilot.model import errors
from kopilot.sim import scenarios


def test_default_scenario_uses_bundled_traces() -> None:
    sc = scenarios.default()
    assert scenarios.locate(sc.service.demand_trace, None).exists()
    assert sc.policies == ("hpa", "keda", "kpa", "kopilot")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("service:\n  capacity_rps: -1\n", "service.capacity_rps"),
        ("service:\n  min_replicas: 9\n  max_replicas: 3\n", "service"),
        ("policies: [hpa, magic]\n", "policies"),
        ("tick_s: soon\n", "tick_s"),
        ("surprise: 1\n", "surprise"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(errors.InvalidInputError) as e:
        scenarios.load(path)
    assert f"{field}:" in str(e.value) or f"{field}." in str(e.value)
    assert str(path) in str(e.value)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(errors.InvalidInputError, match="not valid YAML"):
        scenarios.load(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(errors.InvalidInputError, match="mapping"):
        scenarios.load(path)


def test_missing_trace_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidInputError, match="not found next to the scenario"):
        scenarios.locate("nope.csv", tmp_path)

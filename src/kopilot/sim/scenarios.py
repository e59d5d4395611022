"""Scenario files: what the twin replays, parsed and checked with pydantic.

A scenario names a model service (its demand trace, per-replica capacity, cold-start trace,
bounds), the scaling policies to compare, the guardrails, and optionally a GPU cluster replay.
Relative trace paths are looked up next to the scenario file, then in the bundled data.
A bad scenario is rejected with the field that is wrong and why.
"""

from __future__ import annotations

from importlib import resources as importlib_resources
from pathlib import Path

import pydantic

from kopilot.kits import yamlfiles
from kopilot.model import errors

SCALING_POLICIES: tuple[str, ...] = ("hpa", "keda", "kpa", "kopilot")
"""Scaling policies the twin knows by name."""


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class RequestSpec(_Strict):
    cpu_milli: int = pydantic.Field(default=8000, ge=0)
    memory_mib: int = pydantic.Field(default=32768, ge=0)
    gpus: int = pydantic.Field(default=1, ge=0)


class ServiceScenario(_Strict):
    name: str = pydantic.Field(default="sd-genai", min_length=1)
    namespace: str = pydantic.Field(default="genai", min_length=1)
    demand_trace: str = "genai_qps.csv"
    demand_scale: float = pydantic.Field(default=1.0, gt=0)
    capacity_rps: float = pydantic.Field(default=0.35, gt=0)
    cold_start_trace: str = "genai_cold_start.csv"
    startup_overhead_s: float = pydantic.Field(default=30.0, ge=0)
    min_replicas: int = pydantic.Field(default=0, ge=0)
    max_replicas: int = pydantic.Field(default=64, ge=1)
    initial_replicas: int = pydantic.Field(default=2, ge=0)
    request: RequestSpec = RequestSpec()

    @pydantic.model_validator(mode="after")
    def _bounds(self) -> ServiceScenario:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})"
            )
        if not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ValueError("initial_replicas must lie within [min_replicas, max_replicas]")
        return self


class GuardrailSpec(_Strict):
    dry_run: bool = False
    """In the twin nothing real is touched, so the scenario default is to act."""
    window_s: float = pydantic.Field(default=600.0, gt=0)
    max_scale_actions_per_window: int = pydantic.Field(default=60, ge=0)
    max_scale_step: int | None = pydantic.Field(default=None, ge=1)


class ClusterScenario(_Strict):
    nodes_trace: str = "openb_node_list_gpu_node.csv"
    pods_trace: str = "openb_pod_list_default.csv"
    policies: tuple[str, ...] = ("kube-default", "bestfit", "fgd", "kopilot")


class PriceSpec(_Strict):
    gpu_hour: float = pydantic.Field(default=0.95, ge=0)
    cpu_core_hour: float = pydantic.Field(default=0.031611, ge=0)
    memory_gb_hour: float = pydantic.Field(default=0.004237, ge=0)


class Scenario(_Strict):
    name: str = "genai-day"
    seed: int = 7
    tick_s: float = pydantic.Field(default=15.0, gt=0)
    service: ServiceScenario = ServiceScenario()
    policies: tuple[str, ...] = ("hpa", "keda", "kpa", "kopilot")
    guardrails: GuardrailSpec = GuardrailSpec()
    cluster: ClusterScenario | None = ClusterScenario()
    prices: PriceSpec = PriceSpec()

    @pydantic.field_validator("policies")
    @classmethod
    def _some_policies(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("name at least one policy")
        unknown = [p for p in v if p not in SCALING_POLICIES]
        if unknown:
            raise ValueError(f"unknown policy {unknown}; choose from {list(SCALING_POLICIES)}")
        return v


def default() -> Scenario:
    """The bundled scenario: a day of a GPU-served model under the Alibaba GenAI demand curve."""
    return Scenario()


def load(path: Path) -> Scenario:
    """Parse a scenario YAML file; errors name the field and the reason."""
    return yamlfiles.load(path, Scenario, what="scenario")


def locate(name: str, base: Path | None) -> Path:
    """Find a trace: an absolute path, a path relative to the scenario file, or bundled data."""
    candidate = Path(name)
    if candidate.is_absolute():
        return candidate
    if base is not None and (base / candidate).exists():
        return base / candidate
    bundled = Path(str(importlib_resources.files("kopilot") / "data" / name))
    if bundled.exists():
        return bundled
    where = f"next to the scenario ({base}) or " if base is not None else ""
    raise errors.InvalidInputError(f"trace {name!r} not found {where}in kopilot's bundled data")

"""The price book: what one core-hour, GiB-hour and GPU-hour cost, and what a GPU slice is worth.

Defaults are OpenCost's on-prem defaults (`configs/default.json`): CPU 0.031611 $/core-hour,
RAM 0.004237 $/GiB-hour, GPU 0.95 $/GPU-hour. A user's price book is YAML, for example::

    cpu_core_hour: 0.04
    ram_gib_hour: 0.005
    gpu_hour: 0.95
    gpu_models:            # optional, per GPU model (as named in kopilot.model.gpus)
      A100-80GB: 3.20

A GPU share is priced by what it takes from the GPU: a time-sliced share (`gpu_milli`) by its
fraction; a MIG slice by the larger of its compute share (of 7) and memory share (of 8), because
that is the part of the GPU no one else can use (a 3g.40gb holds 4 of 8 memory slices: half).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pydantic

from kopilot.kits import yamlfiles
from kopilot.model import errors, gpus, resources

DEFAULT_CPU_CORE_HOUR = 0.031611
DEFAULT_RAM_GIB_HOUR = 0.004237
DEFAULT_GPU_HOUR = 0.95
GIB = 1024.0**3


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceBook:
    """Prices per hour; `gpu_models` overrides `gpu_hour` for the GPU models it names."""

    cpu_core_hour: float = DEFAULT_CPU_CORE_HOUR
    ram_gib_hour: float = DEFAULT_RAM_GIB_HOUR
    gpu_hour: float = DEFAULT_GPU_HOUR
    gpu_models: Mapping[str, float] = field(default_factory=dict)
    currency: str = "USD"

    def gpu_price(self, model: str | None) -> float:
        """The hourly price of one whole GPU of `model` (the default price when unknown)."""
        if model is not None and model in self.gpu_models:
            return self.gpu_models[model]
        return self.gpu_hour


class _PriceBookFile(pydantic.BaseModel):
    """The YAML schema of a price book (every field optional; unknown fields are refused)."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=False)

    cpu_core_hour: float = pydantic.Field(default=DEFAULT_CPU_CORE_HOUR, ge=0, allow_inf_nan=False)
    ram_gib_hour: float = pydantic.Field(default=DEFAULT_RAM_GIB_HOUR, ge=0, allow_inf_nan=False)
    gpu_hour: float = pydantic.Field(default=DEFAULT_GPU_HOUR, ge=0, allow_inf_nan=False)
    gpu_models: dict[str, pydantic.NonNegativeFloat] = pydantic.Field(default_factory=dict)
    currency: str = pydantic.Field(default="USD", min_length=1)


def parse(text: str, *, source: str = "<price book>") -> PriceBook:
    """Parse a YAML price book; a bad file raises InvalidInputError naming the file and field."""
    parsed = yamlfiles.parse(text, _PriceBookFile, source=source, what="price book")
    return PriceBook(
        cpu_core_hour=parsed.cpu_core_hour,
        ram_gib_hour=parsed.ram_gib_hour,
        gpu_hour=parsed.gpu_hour,
        gpu_models=dict(parsed.gpu_models),
        currency=parsed.currency,
    )


def mig_share(model: str | None, profile: str) -> float:
    """The share of one GPU a MIG slice takes: max(compute/7, memory slices/8).

    The profile is looked up on `model` when known, else on any MIG-capable model that has it.
    """
    candidates = [gpus.model_named(model)] if model else []
    candidates += [m for m in gpus.MODELS.values() if m.mig_capable]
    for candidate in candidates:
        for p in candidate.mig_profiles:
            if p.name == profile:
                return max(p.compute / gpus.COMPUTE_SLICES, p.memory_slices / gpus.MEMORY_SLICES)
    raise errors.InvalidInputError(
        f"unknown MIG profile {profile!r}"
        + (f" on {model}" if model else "")
        + "; known profiles look like 1g.10gb, 3g.40gb, 7g.80gb"
    )


def gpu_share(request: resources.Resources, *, model: str | None = None) -> float:
    """GPUs a request holds: whole GPUs, a time-sliced fraction, and MIG slices by their share."""
    mig = sum(count * mig_share(model, profile) for profile, count in request.mig.items())
    return request.gpu_demand + mig

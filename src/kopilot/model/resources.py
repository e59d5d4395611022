"""Resource quantities: CPU, memory, whole GPUs, time-sliced GPU shares and MIG slices.

A pod asks for either whole GPUs (`gpus`), a share of one GPU (`gpu_milli`, 1..999, the
time-slicing model of the Alibaba trace and of HAMi), or MIG slices (`mig`, profile name -> count).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kopilot.model import errors

GPU_MILLI = 1000
"""A whole GPU, in GPU milli-units."""

RESOURCE_GPU = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"


@dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    """A request or a capacity. All fields are non-negative integers."""

    cpu_milli: int = 0
    memory_mib: int = 0
    gpus: int = 0
    gpu_milli: int = 0
    mig: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("cpu_milli", "memory_mib", "gpus", "gpu_milli"):
            value = getattr(self, name)
            if value < 0:
                raise errors.InvalidInputError(f"resources: {name} must be >= 0, got {value}")
        if self.gpu_milli >= GPU_MILLI:
            raise errors.InvalidInputError(
                f"resources: gpu_milli is a share of one GPU (1..999), got {self.gpu_milli}; "
                "ask for whole GPUs with `gpus` instead"
            )
        if self.gpu_milli and self.gpus:
            raise errors.InvalidInputError(
                "resources: ask for whole GPUs or a GPU share, not both "
                f"(gpus={self.gpus}, gpu_milli={self.gpu_milli})"
            )
        for profile, count in self.mig.items():
            if count < 0:
                raise errors.InvalidInputError(f"resources: mig[{profile}] must be >= 0")

    @property
    def gpu_demand(self) -> float:
        """GPUs asked for, counting a share as a fraction (MIG slices not included)."""
        return self.gpus + self.gpu_milli / GPU_MILLI

    @property
    def wants_gpu(self) -> bool:
        return self.gpus > 0 or self.gpu_milli > 0 or any(self.mig.values())

    def to_kubernetes(self) -> dict[str, str]:
        """The request as a Kubernetes resource map (`cpu`, `memory`, `nvidia.com/...`)."""
        out = {"cpu": f"{self.cpu_milli}m", "memory": f"{self.memory_mib}Mi"}
        if self.gpus:
            out[RESOURCE_GPU] = str(self.gpus)
        for profile, count in sorted(self.mig.items()):
            if count:
                out[f"{MIG_RESOURCE_PREFIX}{profile}"] = str(count)
        return out

"""A pod's request in the form placement works with.

A `Demand` is one of: no GPU (CPU and memory only), `gpus` whole GPUs, one share of a GPU
(`gpu_milli` 1..999, the trace's and HAMi's time-slicing model), or MIG slices (one profile,
a count). `models` restricts the GPU model (the trace's `gpu_spec`, e.g. `V100M16|V100M32`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kopilot.model import cluster, errors, resources


@dataclass(frozen=True, slots=True, kw_only=True)
class Demand:
    """What one pod needs from a node."""

    pod: str
    cpu_milli: int = 0
    memory_mib: int = 0
    gpus: int = 0
    gpu_milli: int = 0
    models: frozenset[str] = frozenset()
    mig_profile: str | None = None
    mig_count: int = 0

    def __post_init__(self) -> None:
        if self.gpus and self.gpu_milli:
            raise errors.InvalidInputError(
                f"pod {self.pod}: ask for whole GPUs or a GPU share, not both"
            )
        if not 0 <= self.gpu_milli < resources.GPU_MILLI:
            raise errors.InvalidInputError(
                f"pod {self.pod}: gpu_milli is a share of one GPU (1..999), got {self.gpu_milli}"
            )
        if self.mig_profile and (self.gpus or self.gpu_milli):
            raise errors.InvalidInputError(
                f"pod {self.pod}: a MIG slice cannot be combined with whole or shared GPUs"
            )
        if min(self.cpu_milli, self.memory_mib, self.gpus, self.mig_count) < 0:
            raise errors.InvalidInputError(f"pod {self.pod}: requests must be >= 0")

    @property
    def kind(self) -> str:
        """`none`, `whole`, `share` or `mig`."""
        if self.mig_profile:
            return "mig"
        if self.gpus:
            return "whole"
        if self.gpu_milli:
            return "share"
        return "none"

    @property
    def per_gpu_milli(self) -> int:
        """Milli-GPU taken on each GPU used (1000 for a whole GPU, 0 without GPU)."""
        if self.gpus:
            return resources.GPU_MILLI
        return self.gpu_milli

    @property
    def gpu_count(self) -> int:
        """How many GPUs are touched (whole GPUs, or 1 for a share)."""
        if self.gpus:
            return self.gpus
        return 1 if self.gpu_milli else 0

    @property
    def gpu_milli_total(self) -> int:
        """The GPU capacity taken, in milli-GPU (MIG slices not counted)."""
        return self.per_gpu_milli * self.gpu_count

    def describe(self) -> str:
        parts = [f"cpu {self.cpu_milli}m", f"mem {self.memory_mib}Mi"]
        if self.gpus:
            parts.append(f"{self.gpus} GPU")
        if self.gpu_milli:
            parts.append(f"{self.gpu_milli}m GPU share")
        if self.mig_profile:
            parts.append(f"{self.mig_count}x mig-{self.mig_profile}")
        if self.models:
            parts.append("model " + "|".join(sorted(self.models)))
        return ", ".join(parts)


def from_pod(pod: cluster.Pod) -> Demand:
    """The demand of a model `Pod`. A pod may ask for MIG slices of one profile only."""
    request = pod.request
    mig = {p: c for p, c in request.mig.items() if c}
    if len(mig) > 1:
        raise errors.InvalidInputError(
            f"pod {pod.key}: asks for MIG slices of several profiles ({', '.join(sorted(mig))}); "
            "kopilot places one profile per pod"
        )
    profile, count = next(iter(mig.items())) if mig else (None, 0)
    return Demand(
        pod=pod.key,
        cpu_milli=request.cpu_milli,
        memory_mib=request.memory_mib,
        gpus=request.gpus,
        gpu_milli=request.gpu_milli,
        models=pod.gpu_models,
        mig_profile=profile,
        mig_count=count,
    )

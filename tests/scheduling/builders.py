"""Builders for scheduling tests: small clusters and pods."""

from __future__ import annotations

from kopilot.model import cluster, gpus
from kopilot.scheduling import demands


def node(
    name: str,
    *,
    gpus_: int = 8,
    model: str = "G2",
    cpu: int = 96_000,
    mem: int = 393_216,
    labels: dict[str, str] | None = None,
    mig: list[gpus.MigLayout | None] | None = None,
) -> cluster.Node:
    layouts = mig or [None] * gpus_
    return cluster.Node(
        name=name,
        cpu_milli=cpu,
        memory_mib=mem,
        gpus=tuple(
            cluster.Gpu(index=i, model=model, mig=layouts[i] if i < len(layouts) else None)
            for i in range(gpus_)
        ),
        labels=labels or {},
    )


def pod(
    name: str,
    *,
    cpu: int = 1000,
    mem: int = 1024,
    gpus_: int = 0,
    milli: int = 0,
    models: str = "",
    mig: str | None = None,
    mig_count: int = 1,
) -> demands.Demand:
    return demands.Demand(
        pod=f"default/{name}",
        cpu_milli=cpu,
        memory_mib=mem,
        gpus=gpus_,
        gpu_milli=milli,
        models=frozenset(m for m in models.split("|") if m),
        mig_profile=mig,
        mig_count=mig_count if mig else 0,
    )

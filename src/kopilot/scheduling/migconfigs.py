"""The named MIG configs of the NVIDIA GPU operator, and which kopilot layouts they hold.

The GPU operator's MIG manager (mig-parted) reconfigures a node when its `nvidia.com/mig.config`
label changes to the name of a config in its ConfigMap, and reports progress in
`nvidia.com/mig.config.state` (`pending`, `rebooting`, `success`, `failed`). The operator ships a
default ConfigMap (`default-mig-parted-config`, assets/state-mig-manager/0400_configmap.yaml);
its configs apply to `devices: all`, so one named config gives every GPU of a node the same
layout. The table below is that default, for the MIG-capable models kopilot knows:

| config | A100-40GB | A100-80GB, H100-80GB |
|---|---|---|
| `all-disabled` | MIG off (plain GPUs) | MIG off |
| `all-1g.5gb` | 7 x 1g.5gb | - |
| `all-1g.10gb` | 4 x 1g.10gb | 7 x 1g.10gb |
| `all-1g.20gb` | - | 4 x 1g.20gb |
| `all-2g.10gb` / `all-2g.20gb` | 3 x 2g.10gb | 3 x 2g.20gb |
| `all-3g.20gb` / `all-3g.40gb` | 2 x 3g.20gb | 2 x 3g.40gb |
| `all-4g.20gb` / `all-4g.40gb` | 1 x 4g.20gb | 1 x 4g.40gb |
| `all-7g.40gb` / `all-7g.80gb` | 1 x 7g.40gb | 1 x 7g.80gb |
| `all-balanced` | 2 x 1g.5gb + 2g.10gb + 3g.20gb | 2 x 1g.10gb + 2g.20gb + 3g.40gb |

(`all-enabled` and the `.me` media-extension configs are left out: no slices, or a profile kopilot
does not model.) A layout with any other mix (say 3 x 2g.20gb + 1g.10gb, which the free planner
may pick) has **no named config**: `name_for` returns None and kopilot says so instead of acting.
"""

from __future__ import annotations

from collections.abc import Mapping

from kopilot.model import gpus

LABEL_CONFIG = "nvidia.com/mig.config"
LABEL_STATE = "nvidia.com/mig.config.state"
LABEL_GPU_COUNT = "nvidia.com/gpu.count"
"""GPU feature discovery's count of physical GPUs (MIG nodes advertise no `nvidia.com/gpu`)."""
DISABLED = "all-disabled"

_SMALL = {"all-1g.5gb": {"1g.5gb": 7}, "all-1g.10gb": {"1g.10gb": 4}}
_BIG = {"all-1g.10gb": {"1g.10gb": 7}, "all-1g.20gb": {"1g.20gb": 4}}


def _family(unit: int, extra: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    u = unit
    return {
        **{k: dict(v) for k, v in extra.items()},
        f"all-2g.{2 * u}gb": {f"2g.{2 * u}gb": 3},
        f"all-3g.{4 * u}gb": {f"3g.{4 * u}gb": 2},
        f"all-4g.{4 * u}gb": {f"4g.{4 * u}gb": 1},
        f"all-7g.{8 * u}gb": {f"7g.{8 * u}gb": 1},
        "all-balanced": {f"1g.{u}gb": 2, f"2g.{2 * u}gb": 1, f"3g.{4 * u}gb": 1},
    }


NAMED: Mapping[str, Mapping[str, Mapping[str, int]]] = {
    "A100-40GB": _family(5, _SMALL),
    "A100-80GB": _family(10, _BIG),
    "H100-80GB": _family(10, _BIG),
}
"""GPU model -> config name -> slices per GPU (profile -> count)."""


def layout_of(model: str, name: str) -> gpus.MigLayout | None:
    """The layout config `name` gives one GPU of `model`; None when the default has no such config
    for that model (a custom config, or a profile the model lacks). `all-disabled` is not a layout:
    check for it first."""
    counts = NAMED.get(model, {}).get(name)
    if counts is None:
        return None
    gpu_model = gpus.model_named(model)
    profiles = [p for p, c in sorted(counts.items()) for _ in range(c)]
    return gpus.pack_profiles(gpu_model, profiles)


def layouts(model: str) -> dict[str, gpus.MigLayout]:
    """Every named config of `model` with the layout it gives one GPU."""
    out: dict[str, gpus.MigLayout] = {}
    for name in NAMED.get(model, {}):
        layout = layout_of(model, name)
        if layout is not None:
            out[name] = layout
    return out


def name_for(layout: gpus.MigLayout) -> str | None:
    """The named config that gives a GPU exactly this mix of slices, or None when there is none."""
    want = layout.counts()
    for name, counts in NAMED.get(layout.model, {}).items():
        if dict(counts) == want:
            return name
    return None

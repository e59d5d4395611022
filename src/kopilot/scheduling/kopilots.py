"""kopilot's own placement policy: FGD's fragmentation, made aware of CPU- and memory-starved GPUs.

FGD counts a GPU as a fragment for a task shape only once the node can no longer host that shape.
On the openb cluster the binding constraint is often CPU, not GPU: an 8-GPU node with 96 vCPU has
12 vCPU per GPU while the trace's GPU pods ask ~14 vCPU per GPU, and CPU-only pods land anywhere
their placement does not yet cross a threshold. Idle GPUs then end up stranded behind exhausted
CPU. kopilot adds to the fragmentation of a node its *stranded* GPU capacity: the free milli-GPU
that the node's free CPU (and memory) cannot feed at the workload's average CPU (memory) per
milli-GPU. The increase of that sum is minimised as in FGD, so CPU-hungry and CPU-only pods are
steered to CPU-rich nodes early, before any threshold is crossed. Memory also counts in the
fragmentation test (FGD looks at CPU only). Ties are broken by best fit.

Every pod also pays REMNANT x the change of its node's lasting remnant (`remnants`): over the node's
partly used GPUs, the free milli that the workload's reliable filler sizes cannot fill, however
many of them come, counting only the fillers the node's free CPU, memory and GPU model can still
host. Among the GPUs a share fits on, the one left with the smallest lasting remnant wins (a 320
beside a 650, not beside a 470, whose 530-milli hole the next 470 fills to 60), and a pod whose CPU
would leave a hole's fillers no room (a 470 on a node's last 8 vCPU beside a 530-milli hole) pays
for that hole. Fragmentation and stranding decide between equal remnants.

With GPU model constraints (`gpu_spec`), kopilot also keeps flexible pods off GPU models that
constrained pods can only run on: each milli-GPU placed on a model under more pressure than the
pod's average allowed model costs RESERVE x the difference (see `fragmentation.model_pressure`).
Without constraints the term is zero.
"""

from __future__ import annotations

from kopilot.scheduling import fgd, fragmentation, framework, scores

DESCRIPTION = "fragmentation + stranded-GPU + share-remnant aware placement (kopilot)"
STRANDING = 1.0
"""Weight of stranded milli-GPU against fragmented milli-GPU (both are GPU capacity lost)."""
REMNANT = 8.0
"""Weight of the remnant term against fragmentation (both milli-GPU). Measured on the openb default
trace (3 seeds, @130 %) when the term counted the share's GPU only and ignored CPU: 5 -> 96.21 %,
8 -> 96.23, 12 -> 96.27; without the term 95.94. Per node and CPU-aware (seeds 10-12): 4 -> 96.17,
8 -> 96.27, 16 -> 96.27."""
RESERVE = 1.0
"""Weight of the scarce-model term, in milli-GPU per milli-GPU placed per unit of excess pressure."""
TIE_BREAK = 1e-4


def plugins(
    workload: fragmentation.Workload,
) -> tuple[tuple[tuple[framework.Score, float], ...], framework.GpuPicker]:
    """kopilot's score plugins with their weights, and its GPU picker."""
    frag = fgd.FragmentationScore(
        workload,
        name="FragmentationAndStranding",
        memory=True,
        stranding=STRANDING,
        remnant=REMNANT,
        reserve=RESERVE,
    )
    return ((frag, 1.0), (scores.BestFit(), TIE_BREAK)), fgd.FragmentationPicker(frag)

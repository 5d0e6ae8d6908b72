"""Contrastive objectives with in-batch negatives gathered from every rank.

Distributed semantics (world size W, each rank holding B samples, N = W*B):

* `gather_with_grad` concatenates a tensor from all ranks; gradients flow back through the gather
  (torch.distributed.nn all_gather: its backward sums the gradient every rank sends to a slice and
  hands it to the rank that owns the slice).
* `contrastive_loss` on rank r = mean over r's B queries of the cross-entropy of each query against
  all N gathered targets (labels offset by r*B). The mean of these per-rank values over ranks equals
  the single-process loss on the concatenated batch.
* Gradients: rank r's backward gives d(sum_k loss_k)/d(params on r's inputs). The gradient AVERAGE over
  ranks that DDP and DeepSpeed all-reduce therefore equals the single-process gradient of the global
  mean loss exactly. Do not rescale by W.

With no process group (or W = 1) everything reduces to the ordinary single-process loss.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F


def dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) without an initialised process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate x [B, D] from every rank (rank order), gradients flowing back.

    Returns (gathered [sum B_r, D], offset of this rank's rows). Ranks may hold different B.
    """
    rank, world = dist_info()
    if world == 1:
        return x, 0
    import torch.distributed as dist
    import torch.distributed.nn.functional as dist_fn

    size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes_list = [int(s.item()) for s in sizes]
    longest = max(sizes_list)
    padded = F.pad(x, (0, 0, 0, longest - x.shape[0])) if x.shape[0] < longest else x
    with warnings.catch_warnings():  # the autograd all_gather is marked deprecated but is the public one
        warnings.simplefilter("ignore", FutureWarning)
        parts = dist_fn.all_gather(padded)
    gathered = torch.cat([p[:n] for p, n in zip(parts, sizes_list, strict=True)])
    return gathered, sum(sizes_list[:rank])


def contrastive_loss(
    query: torch.Tensor, target: torch.Tensor, temperature: torch.Tensor | float, gather: bool = True
) -> torch.Tensor:
    """InfoNCE query -> target: row i of `query` matches row i of `target`; every other target of the
    global batch is a negative. Inputs are L2-normalised embeddings [B, D]. See the module docstring
    for what the value means on each rank."""
    if gather:
        targets, offset = gather_with_grad(target)
    else:
        targets, offset = target, 0
    return batch_cross_entropy(query @ targets.T / temperature, offset)


def batch_cross_entropy(scores: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Cross-entropy over a batch score matrix: row i of `scores` [B, N] (this rank's queries
    against every gathered candidate, already scaled by the temperature) has its positive in
    column offset + i. Every method whose objective is a softmax over the batch shares this."""
    labels = torch.arange(scores.shape[0], device=scores.device) + offset
    return F.cross_entropy(scores.float(), labels)

"""FLOPs of one training step, counted with torch's FLOP counter."""

from __future__ import annotations

import torch

from coir.pipeline.models.base import RetrievalModel


def train_flops_per_sample(model: RetrievalModel, batch: dict[str, torch.Tensor]) -> float:
    """Forward + backward FLOPs of model.loss(batch), divided by the batch size. Gradients are cleared
    afterwards. (Counts matmuls/convolutions/attention, as FlopCounterMode does; not the optimizer.)"""
    from torch.utils.flop_counter import FlopCounterMode

    n = batch["query_image"].shape[0]
    was_training = model.training
    model.train()
    with FlopCounterMode(display=False) as counter:
        model.loss(batch)["loss"].backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops() / n

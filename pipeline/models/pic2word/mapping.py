"""The mapping network of Pic2Word (IM2TEXT in the reference's model/model.py): a CLIP image embedding ->
one pseudo-word token embedding of the CLIP text tower. Parameter names are the reference's
(layers.<i>.0, fc_out), so its checkpoints' `state_dict_img2text` loads as it is."""

from __future__ import annotations

import torch
from torch import nn


class PseudoWordMapping(nn.Module):
    """`layers` blocks of Linear -> Dropout -> ReLU (the reference's order), then fc_out to token_dim."""

    def __init__(self, embed_dim: int, hidden_dim: int, token_dim: int, layers: int, dropout: float) -> None:
        super().__init__()
        blocks, width = [], embed_dim
        for _ in range(layers):
            blocks.append(nn.Sequential(nn.Linear(width, hidden_dim), nn.Dropout(dropout), nn.ReLU()))
            width = hidden_dim
        self.layers = nn.Sequential(*blocks)
        self.fc_out = nn.Linear(width, token_dim)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalised) CLIP image features [B, embed_dim] -> pseudo-word embeddings [B, token_dim]."""
        return self.fc_out(self.layers(image_features.to(self.fc_out.weight.dtype)))

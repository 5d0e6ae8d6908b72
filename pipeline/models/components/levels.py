"""Image features at three levels of a ResNet (CMAP, MANME: Code_CMAP / MANME encoders.py).

At 224 px: layer4 7 x 7, layer3 14 x 14, layer2 28 x 28. Each level is GeM-pooled (p = 3), projected
to D by its own linear layer and L2-normalised. A family may pass a cross-level `interaction` (CMAP)
that rewrites the maps between the trunk and the pooling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from coir.pipeline.models.components.cnn import GeM, build_resnet

LEVELS = ("layer4", "layer3", "layer2")  # the references' 7x7, 14x14, 28x28 (their r, r_14, r_28)


class MultiLevelImageEncoder(nn.Module):
    """images [B, 3, H, W] -> {level: [B, D]} (unit norm), and on request the level's region tokens
    {level: [B, h * w, D]} (each position of the map through the level's linear layer, not normalised)."""

    def __init__(
        self, backbone: str, weights: str | None, embed_dim: int, interaction: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.cnn = build_resnet(backbone, weights)
        self.interaction = interaction
        self.pool = GeM(p=3.0)
        self.fc = nn.ModuleDict({level: nn.Linear(self.cnn.channels[level], embed_dim) for level in LEVELS})

    @property
    def frozen(self) -> bool:
        return not any(p.requires_grad for p in self.cnn.parameters())

    def maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three maps [B, C_level, h, w], after the cross-level interaction when there is one."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            maps = self.cnn(images)
        return self.interaction(maps) if self.interaction is not None else maps

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.embed(self.maps(images))

    def embed(self, maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {level: F.normalize(self.fc[level](self.pool(maps[level])), dim=-1) for level in LEVELS}

    def regions(self, maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {level: self.fc[level](maps[level].flatten(2).transpose(1, 2)) for level in LEVELS}

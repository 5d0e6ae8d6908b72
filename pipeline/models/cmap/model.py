"""CMAP: EM + IS at three ResNet levels after a cross-level interaction, trained with a
self-contrastive preservation loss (CFM-MSG/Code_CMAP).

Cross-level interaction (maps C4 = layer4, C3 = layer3, C2 = layer2; lat = 1x1 conv to the finer
level's channels, smooth = 3x3 conv; resize = bilinear, align_corners false, as F.upsample):

    released  (encoders.py EncoderImage, `_upsample_add(x, y) = resize(x, grid of y) + y`)
        H3 = smooth3(resize(C3, grid of C4) + lat43(C4))        on C4's grid (7 x 7 at 224 px)
        H2 = smooth2(resize(C2, grid of C3) + lat32(C3))        on C3's grid; C3 as it is
    top_down  (the feature-pyramid reading of the paper's "high-level features complete the lower
               levels": each level keeps its own grid and receives the level above)
        P3 = C3 + resize(lat43(C4), grid of C3);   H3 = smooth3(P3)
        P2 = C2 + resize(lat32(P3), grid of C2);   H2 = smooth2(P2)
    H4 = C4 in both. With the fusion gate (the paper's; absent from the released code) each sum
    low + high becomes low + g * high, g = sigmoid(conv1x1([low; high])) per channel and position.

Preservation loss (loss.py ContrastiveLoss_aaai, train.py), on matching pairs, per level, IS only:

    Rev(A) = 2 mean(A) - A                      (cmap.py contran_attn; mean over the D features)
    cost   = max(0, margin + <m, l2n(A_IS(m) * t)> - <m, l2n(Rev(A_IS(m)) * t)>)
    L_pres = sum_levels weight_l * sum_batch cost    (margins 0.6 / 0.4 / 0.3, weights 1 / 1 / 0.5)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from coir.common.errors import ConfigError
from coir.datasets.vocab import Vocabulary
from coir.pipeline.models.cmap.config import CROSS_LEVEL_PATHS, CmapModelConfig
from coir.pipeline.models.components.cnn import RESNET_CHANNELS
from coir.pipeline.models.components.em_is import attended
from coir.pipeline.models.components.levels import LEVELS
from coir.pipeline.models.components.multilevel import LevelPairs, MultiLevelEMIS, global_batch_sum

FUSED = ("layer3", "layer2")  # the levels the interaction rewrites; layer4 passes as it is


def resize_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class CrossLevelInteraction(nn.Module):
    """{layer4, layer3, layer2} maps -> the same with layer3 and layer2 fused (module docstring)."""

    def __init__(self, channels: dict[str, int], path: str = "released", gate: bool = False) -> None:
        super().__init__()
        if path not in CROSS_LEVEL_PATHS:
            choices = ", ".join(CROSS_LEVEL_PATHS)
            raise ConfigError(f"key 'model.cross_level': must be one of {choices}, got {path!r}")
        self.path = path
        above = {"layer3": "layer4", "layer2": "layer3"}
        # Code_CMAP's latlayer_7214 / latlayer_14228 and smooth_14 / smooth_28
        self.lateral = nn.ModuleDict({lv: nn.Conv2d(channels[above[lv]], channels[lv], 1) for lv in FUSED})
        self.smooth = nn.ModuleDict({lv: nn.Conv2d(channels[lv], channels[lv], 3, padding=1) for lv in FUSED})
        self.gate: nn.ModuleDict | None = None
        if gate:
            self.gate = nn.ModuleDict({lv: nn.Conv2d(2 * channels[lv], channels[lv], 1) for lv in FUSED})

    def fuse(self, level: str, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """low + high (released), or low + g * high with the fusion gate."""
        if self.gate is None:
            return low + high
        return low + torch.sigmoid(self.gate[level](torch.cat([low, high], dim=1))) * high

    def forward(self, maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c4, c3, c2 = (maps[level] for level in LEVELS)
        if self.path == "released":
            p3 = self.fuse("layer3", resize_to(c3, c4), self.lateral["layer3"](c4))
            p2 = self.fuse("layer2", resize_to(c2, c3), self.lateral["layer2"](c3))
        else:
            p3 = self.fuse("layer3", c3, resize_to(self.lateral["layer3"](c4), c3))
            p2 = self.fuse("layer2", c2, resize_to(self.lateral["layer2"](p3), c2))
        return {"layer4": c4, "layer3": self.smooth["layer3"](p3), "layer2": self.smooth["layer2"](p2)}


def reversed_attention(attention: torch.Tensor) -> torch.Tensor:
    """Rev(A) = 2 mean(A) - A over the last (feature) dimension: A mirrored about its mean."""
    return 2 * attention.mean(dim=-1, keepdim=True) - attention


def preservation_cost(
    text: torch.Tensor, a_is: torch.Tensor, target: torch.Tensor, margin: float
) -> torch.Tensor:
    """[B]: max(0, margin + <m, l2n(A_IS * t)> - <m, l2n(Rev(A_IS) * t)>) for each matching pair."""
    kept = (text * attended(a_is, target)).sum(-1)
    mirrored = (text * attended(reversed_attention(a_is), target)).sum(-1)
    return (margin + kept - mirrored).clamp_min(0)


class Cmap(MultiLevelEMIS):
    family = "cmap"
    name = "cmap"

    def __init__(self, cfg: CmapModelConfig, vocab: Vocabulary, load_weights: bool = True) -> None:
        for key in ("preservation_margins", "preservation_level_weights"):
            if len(getattr(cfg, key)) != len(LEVELS):
                raise ConfigError(f"key 'model.{key}': one value per level ({', '.join(LEVELS)})")
        channels = RESNET_CHANNELS.get(cfg.backbone, RESNET_CHANNELS["resnet50"])
        interaction = CrossLevelInteraction(channels, cfg.cross_level, cfg.fusion_gate)
        super().__init__(cfg, vocab, interaction, load_weights)
        self.configure()

    def auxiliary_losses(self, pairs: dict[str, LevelPairs]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        if not cfg.preservation:
            return {}
        total = sum(
            weight * global_batch_sum(preservation_cost(p.text, p.a_is, p.target, margin))
            for p, margin, weight in zip(
                (pairs[level] for level in LEVELS),
                cfg.preservation_margins,
                cfg.preservation_level_weights,
                strict=True,
            )
        )
        return {"preservation": cfg.preservation_weight * total}

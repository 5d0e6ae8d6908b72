"""CRN's image side (yan9qu/crn model.py `img_backbone`): a plain timm Swin whose every stage output
is read with timm's own `forward_intermediates` (timm unmodified; the reference patched timm's forward
to return them), a 1x1 convolution of the last stage to the region map, GeM + linear to the image
embedding, and the hierarchical aggregation of the stage features.

    S_1..S_n   = Swin stage outputs (NCHW; the last one after the final LayerNorm)
    M          = Conv1x1(S_n)                                              [B, map_dim, h, w]
    e          = Lin(GeM(M))                                               [B, embed_dim]
    agg        = Lin([e, avgpool(S_i) for i in aggregation_stages])        [B, map_dim]
    aggregation=paper     M' = M + agg (broadcast over h, w),  e' = Lin(GeM(M'))  (the same Lin): the
                          paper's top-down aggregation of the stage features by an MLP, in the form
                          the released code computes it (the paper's equations were not at hand)
    aggregation=released  M' = M, e' = e: the reference computes `imgs_final = final + imgs` and
                          returns `imgs`, so agg (and its linear layer) never reach an output

The reference's timm (0.4) placed patch merging at the end of a stage, so its stage outputs 1 and 2
are today's stage 2 and 3 inputs (768 and 1536 channels for Swin-L); timm 1.0 merges at the start of
a stage, and `aggregation_stages` [1, 2] take the outputs of today's stages 1 and 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from timm.models.swin_transformer import SwinTransformer, checkpoint_filter_fn
from torch import nn

from coir.common.errors import ConfigError
from coir.pipeline.models.components.cnn import read_state_dict
from coir.pipeline.models.crn.cross_relation import GeM
from coir.pipeline.models.loading import load_state_checked


def build_swin(name: str, image_size: int, args: dict[str, Any] | None) -> SwinTransformer:
    """timm's Swin `name` with random weights (pretrained=False: nothing downloads) and no head."""
    try:
        swin = timm.create_model(name, pretrained=False, num_classes=0, img_size=image_size, **(args or {}))
    except (RuntimeError, TypeError, ValueError) as e:
        raise ConfigError(f"key 'model.backbone': timm cannot build {name!r} here: {e}") from None
    if not isinstance(swin, SwinTransformer):
        raise ConfigError(f"key 'model.backbone': CRN needs a timm Swin, {name!r} is a {type(swin).__name__}")
    return swin


def load_swin_weights(swin: SwinTransformer, path: str | Path) -> None:
    """A local timm (or original Microsoft) Swin state dict into `swin`, every key checked: ConfigError
    naming the missing, unexpected and wrongly shaped keys. Only the classifier (`head.*`) may be
    left over; the relative-position index and attention-mask buffers timm rebuilds may be absent."""
    state = checkpoint_filter_fn(read_state_dict(path), swin)
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    rebuilt = ("relative_position_index", "attn_mask")
    load_state_checked(
        swin,
        state,
        lambda k: k.endswith(rebuilt),
        f"model.backbone_weights {path}: weights do not match the Swin",
    )


class ImageEncoder(nn.Module):
    """Images -> (region map M' [B, map_dim, h, w], image embedding e' [B, embed_dim]); see the module
    docstring. `stages(images)` gives the raw Swin stage outputs."""

    def __init__(
        self,
        swin: SwinTransformer,
        map_dim: int,
        embed_dim: int,
        aggregation: str,
        aggregation_stages: list[int],
        regions: str,
        gem_p: float,
    ) -> None:
        super().__init__()
        channels = [info["num_chs"] for info in swin.feature_info]
        bad = [i for i in aggregation_stages if not 0 <= i < len(channels) - 1]
        if bad:
            raise ConfigError(
                f"key 'model.aggregation_stages': stages 0..{len(channels) - 2} (before the last), got {bad}"
            )
        self.swin = swin
        self.aggregation = aggregation
        self.aggregation_stages = list(aggregation_stages)
        self.regions = regions
        self.conv = nn.Conv2d(channels[-1], map_dim, kernel_size=1, bias=False)
        self.pool = GeM(gem_p)
        self.fc = nn.Linear(map_dim, embed_dim)
        aggregated = embed_dim + sum(channels[i] for i in aggregation_stages)
        self.aggregate = nn.Linear(aggregated, map_dim)
        # released: computed and discarded by the reference, so it never learns (and a frozen layer
        # leaves no parameter without a gradient for DDP / DeepSpeed to trip over)
        self.aggregate.requires_grad_(aggregation == "paper")

    def stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Every Swin stage's output, NCHW, as timm gives them (the last after the final norm)."""
        return self.swin.forward_intermediates(images, norm=True, intermediates_only=True)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stages = self.stages(images)
        last = stages[-1]
        if self.regions == "pooled":
            last = last.mean(dim=(2, 3), keepdim=True)
        regions = self.conv(last)
        embedding = self.fc(self.pool(regions))
        if self.aggregation == "released":
            return regions, embedding
        pooled = [stages[i].mean(dim=(2, 3)) for i in self.aggregation_stages]
        regions = regions + self.aggregate(torch.cat([embedding, *pooled], dim=1))[:, :, None, None]
        return regions, self.fc(self.pool(regions))

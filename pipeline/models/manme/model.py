"""MANME: EM + IS at three ResNet levels without cross-level fusion, trained with a mutual-exclusion
constraint between the preserved (A_IS) and the modified (A_EM) attention (chenqian57/MANME).

Mutual exclusion (loss.py ContrastiveLoss), on matching pairs, per level, with l2n(A * t) as the
released code passes it (`apply_attention`; `mutual_exclusion_normalized: false` takes A * t as the
equation is written, without the normalisation):

    cost = max(0, margin + 0.4 <m, l2n(A_IS * t)> + 0.6 <Tr(m), l2n(A_IS * t)>
                         - 0.6 <Tr(m), l2n(A_EM * t)> - 0.4 <m, l2n(A_EM * t)>)
    L_me = weight * sum_levels sum_batch cost            (margins 0.6 / 0.3 / 0.25)

The text should match what the target shows under the modified attention better than under the
preserved one. train.py builds this term and never adds it; here `mutual_exclusion` adds it.

Attention (`attention`):
    released       m_l = m at every level: MANME_modle.py builds self- and cross-attention modules
                   (Self_attention*, cross_attention*) but its scoring never calls them.
    multi_grained  our reading of the paper's multi-grained attention (its text was not available
                   here): at each level the text attends over that level's regions of the reference,
                   m_l = l2n(m + softmax(q(m) k(R_l)^T / sqrt(D)) v(R_l)), R_l the level's map through
                   its linear layer, one attention per level. Targets stay text-free (pooled), so the
                   gallery is encoded once and scoring stays a matrix product.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from coir.common.errors import ConfigError
from coir.datasets.vocab import Vocabulary
from coir.pipeline.models.components.em_is import attended
from coir.pipeline.models.components.levels import LEVELS
from coir.pipeline.models.components.multilevel import LevelPairs, Levels, MultiLevelEMIS, global_batch_sum
from coir.pipeline.models.manme.config import ATTENTIONS, ManmeModelConfig


class TextToRegionAttention(nn.Module):
    """text [B, D] attends over regions [B, N, D] -> l2n(text + attended regions) [B, D]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))

    def forward(self, text: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        logits = torch.einsum("bd,bnd->bn", self.query(text), self.key(regions)) / math.sqrt(text.shape[-1])
        context = torch.einsum("bn,bnd->bd", logits.softmax(dim=-1), self.value(regions))
        return F.normalize(text + context, dim=-1)


def exclusion_cost(pairs: LevelPairs, margin: float, normalized: bool = True) -> torch.Tensor:
    """[B]: the mutual-exclusion hinge of each matching pair (module docstring)."""
    if normalized:
        preserved, modified = attended(pairs.a_is, pairs.target), attended(pairs.a_em, pairs.target)
    else:
        preserved, modified = pairs.a_is * pairs.target, pairs.a_em * pairs.target
    m, tr_m = pairs.text, pairs.em_text
    preserved_match = 0.4 * (m * preserved).sum(-1) + 0.6 * (tr_m * preserved).sum(-1)
    modified_match = 0.6 * (tr_m * modified).sum(-1) + 0.4 * (m * modified).sum(-1)
    return (margin + preserved_match - modified_match).clamp_min(0)


class Manme(MultiLevelEMIS):
    family = "manme"
    name = "manme"

    def __init__(self, cfg: ManmeModelConfig, vocab: Vocabulary, load_weights: bool = True) -> None:
        if cfg.attention not in ATTENTIONS:
            raise ConfigError(
                f"key 'model.attention': must be one of {', '.join(ATTENTIONS)}, got {cfg.attention!r}"
            )
        if len(cfg.mutual_exclusion_margins) != len(LEVELS):
            raise ConfigError(f"key 'model.mutual_exclusion_margins': one per level ({', '.join(LEVELS)})")
        super().__init__(cfg, vocab, None, load_weights)
        self.region_attention: nn.ModuleDict | None = None
        if cfg.attention == "multi_grained":
            self.region_attention = nn.ModuleDict({lv: TextToRegionAttention(cfg.embed_dim) for lv in LEVELS})
        self.configure()

    def level_texts(self, text: torch.Tensor, reference_maps: Levels) -> Levels:
        if self.region_attention is None:
            return super().level_texts(text, reference_maps)
        regions = self.image_encoder.regions(reference_maps)
        return {level: self.region_attention[level](text, regions[level]) for level in LEVELS}

    def auxiliary_losses(self, pairs: dict[str, LevelPairs]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        if not cfg.mutual_exclusion:
            return {}
        total = sum(
            global_batch_sum(exclusion_cost(pairs[level], margin, cfg.mutual_exclusion_normalized))
            for level, margin in zip(LEVELS, cfg.mutual_exclusion_margins, strict=True)
        )
        return {"mutual_exclusion": cfg.mutual_exclusion_weight * total}

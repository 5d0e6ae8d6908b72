"""Options of the CMAP family (Li et al., ACM TOMM 2024, "Cross-Modal Attention Preservation with
Self-Contrastive Learning for Composed Query-Based Image Retrieval"; defaults checked against
CFM-MSG/Code_CMAP option.py, encoders.py and train.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from coir.pipeline.models.components.word_model import WordModelConfig

CROSS_LEVEL_PATHS = ("released", "top_down")


@dataclass
class CmapModelConfig(WordModelConfig):
    family: str = "cmap"
    name: str = "cmap"
    # released: Code_CMAP encoders.py (the finer map resized onto the coarser grid plus the lateral
    # projection of the coarser one; the layer2 level takes the plain layer3 map). top_down: the
    # feature-pyramid path (the coarser map's lateral projection upsampled onto the finer grid, the
    # layer2 level fed from the fused layer3 map). See cmap/model.py.
    cross_level: str = "released"
    # the paper's fusion gate on each cross-level sum (the released code has none: false matches it)
    fusion_gate: bool = False
    # the self-contrastive preservation loss (train.py: loss + 1.0 * loss_contra_all)
    preservation: bool = True
    preservation_weight: float = 1.0
    # per level, layer4 / layer3 / layer2 (train.py: ContrastiveLoss_aaai margins, weights 1, 1, 0.5)
    preservation_margins: list[float] = field(default_factory=lambda: [0.6, 0.4, 0.3])
    preservation_level_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 0.5])

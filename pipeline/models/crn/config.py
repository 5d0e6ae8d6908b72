"""Options of the CRN family (Yang et al., "Composed Image Retrieval via Cross Relation Network with
Hierarchical Aggregation Transformer", IEEE TIP 2023; defaults checked against yan9qu/crn train.py,
model.py, blocks.py, text_model.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coir.pipeline.models.components.word_model import WordModelConfig

AGGREGATIONS = ("paper", "released")
REGIONS = ("map", "pooled")


@dataclass
class CrnModelConfig(WordModelConfig):
    """The word-vocabulary options with CRN's values: a vocabulary of `coir data vocab --tokenizer tirg`
    (the reference's tokenizer: ASCII, lower case, no punctuation), 768-d random word embeddings, one
    LSTM of 1024 units whose every step is a word feature, a timm Swin (the paper's Swin-B / Swin-L,
    ImageNet-22k), a 2048-channel region map, 1024-d embeddings. (`text_encoder`, `temperature`,
    `learnable_temperature`, `glove` are unused: CRN's scale is `normalize_scale`, one per branch.)"""

    family: str = "crn"
    name: str = "crn"
    word_dim: int = 768
    text_encoder: str = "lstm"
    lstm_hidden: int = 1024  # the word feature size (the reference's text_dim)
    embed_dim: int = 1024
    backbone: str = "swin_base_patch4_window7_224"  # a timm Swin; the paper's best: swin_large_*
    # extra timm.create_model arguments (e.g. a tiny Swin's embed_dim, depths, num_heads, window_size)
    backbone_args: dict[str, Any] | None = None
    map_dim: int = 2048  # the 1x1 convolution's output channels on the last Swin stage
    # paper: the hierarchical aggregation of the stage features is added to the last stage's map and
    # used; released: yan9qu/crn computes it and discards it (see backbone.py)
    aggregation: str = "paper"
    # the stages (timm's 0-based order) whose average-pooled outputs enter the aggregation
    aggregation_stages: list[int] = field(default_factory=lambda: [1, 2])
    # map: the regions are the last stage's h x w cells (the paper); pooled: one region, the pooled
    # feature (the released code's Swin returns the pooled vector, so its "map" is 1 x 1)
    regions: str = "map"
    local_temperature: float = 7.0  # region-to-word attention softmax(dot / T) (--local_t)
    global_temperature: float = 4.0  # word-to-region attention (--global_t)
    gem_p: float = 3.0  # GeM pooling's initial p (learned, as the reference's)
    normalize_scale: float = 10.0  # each branch's learnable factor on the cosines before the CE
    mutual_logit_scale: float = 10.0  # fixed factor on the cosines of the mutual KL
    class_weight: float = 1.0
    perceptual_weight: float = 1.0
    image_weight: float = 1.0
    mutual_weight: float = 1.0
    backbone_weights: str | None = None  # local timm Swin state dict, loaded into both branches
    resize: int = 256
    pad_square: bool = False  # the reference resizes the photo as it is

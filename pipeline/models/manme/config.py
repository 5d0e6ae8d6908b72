"""Options of the MANME family ("Multi-Grained Attention Network with Mutual Exclusion for Composed
Query-Based Image Retrieval"; defaults checked against chenqian57/MANME option.py, MANME_modle.py,
loss.py and train.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from coir.pipeline.models.components.word_model import WordModelConfig

ATTENTIONS = ("released", "multi_grained")


@dataclass
class ManmeModelConfig(WordModelConfig):
    family: str = "manme"
    name: str = "manme"
    text_encoder: str = "lstm"  # option.py --txt_enc_type default (ARTEMIS's and CMAP's is bigru)
    # released: the text embedding drives every level (MANME_modle.py scores with its cross- and
    # self-attention modules unused). multi_grained: per level, the text attends over the reference's
    # regions at that level before the EM / IS heads (see manme/model.py).
    attention: str = "released"
    # the mutual-exclusion constraint: train.py builds it (loss.py ContrastiveLoss) but never adds it to
    # the loss, so `mutual_exclusion: false` matches the released training; true adds it with the weight
    mutual_exclusion: bool = True
    mutual_exclusion_weight: float = 1.0
    # true: each product on l2n(A * t), as the released loss.py receives it (apply_attention); false: on
    # A * t itself, the constraint as its equation is written (<m, A_IS(m) * t>, no normalisation)
    mutual_exclusion_normalized: bool = True
    # per level, layer4 / layer3 / layer2 (train.py: ContrastiveLoss margins 0.6, 0.3, 0.25)
    mutual_exclusion_margins: list[float] = field(default_factory=lambda: [0.6, 0.3, 0.25])

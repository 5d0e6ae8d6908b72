"""Options of the TIRG family (Vo et al., CVPR 2019; defaults checked against google/tirg main.py,
img_text_composition_models.py, text_model.py)."""

from __future__ import annotations

from dataclasses import dataclass

from coir.pipeline.models.components.word_model import WordModelConfig

LOSSES = ("batch_classification", "soft_triplet")
TRIPLETS = ("paper", "released")


@dataclass
class TirgModelConfig(WordModelConfig):
    """The word-vocabulary options, with TIRG's values: a vocabulary of `coir data vocab --tokenizer
    tirg`, randomly initialised 512-d word embeddings (no GloVe), one LSTM of 512 units read at the
    last real token, ResNet-18, 512-d embeddings, Resize(224) + CentreCrop(224) without padding.
    (`temperature` / `learnable_temperature` are unused: TIRG's factor is `normalize_scale`.)"""

    family: str = "tirg"
    name: str = "tirg"
    word_dim: int = 512
    text_encoder: str = "lstm"  # TIRG's TextLSTMModel (the only choice here)
    lstm_hidden: int = 512
    backbone: str = "resnet18"
    resize: int = 224
    pad_square: bool = False  # the reference resizes the photo as it is
    text_dropout: float = 0.1  # before the text encoder's output linear layer
    # both sides are L2-normalised and multiplied by this learnable scale s before the loss
    normalize_scale: float = 4.0
    learnable_scale: bool = True
    # the learnable a = (a0, a1) of composition = a0 * sigmoid(gate) * image + a1 * residual, initially
    gate_weight: float = 1.0
    residual_weight: float = 10.0
    # batch_classification: cross-entropy of each query over the batch's targets (the reference's
    # Fashion200k loss); soft_triplet: log(1 + exp(d(anchor, positive) - d(anchor, negative)))
    loss: str = "batch_classification"
    # soft_triplet anchors: paper = the composed queries, against every other target of the batch;
    # released = queries and targets both (google/tirg compute_soft_triplet_loss_), see model.py
    triplet: str = "paper"

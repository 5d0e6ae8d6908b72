"""Options of the ARTEMIS family (Delmas et al., ICLR 2022; defaults checked against naver/artemis)."""

from __future__ import annotations

from dataclasses import dataclass

from coir.pipeline.models.config import ModelConfig


@dataclass
class ArtemisModelConfig(ModelConfig):
    family: str = "artemis"
    name: str = "artemis"
    vocabulary: str | None = None  # word vocabulary JSON from `coir data vocab` (required)
    glove: str | None = None  # local GloVe text file (the papers: 840B.300d) for the word embeddings
    word_dim: int = 300  # word embedding size (GloVe's)
    embed_dim: int = 512  # the joint embedding size
    text_encoder: str = "bigru"  # bigru (256 per direction) | lstm (hidden lstm_hidden, max over time)
    lstm_hidden: int = 1024
    backbone: str = "resnet50"  # resnet18 | resnet50 | resnet152 (torchvision architectures)
    backbone_weights: str | None = None  # local torchvision ResNet state-dict file; random without
    pooling: str = "gem"  # gem (p = 3, the reference's image encoder) | avg (CIRR's released features)
    image_size: int = 224  # centre crop
    resize: int = 256  # shorter side before the crop
    max_length: int = 64  # word ids per text, <start> and <end> included
    # scores are multiplied by exp(temperature) before the cross-entropy; ln(1 / 0.07) as the reference
    temperature: float = 2.65926
    learnable_temperature: bool = True
    freeze_backbone: bool = False  # stage 1 of the two-stage recipe
    freeze_word_embeddings: bool = False  # stage 1 of the two-stage recipe

    def input_paths(self) -> dict[str, str | None]:
        return super().input_paths() | {
            "model.vocabulary": self.vocabulary,
            "model.glove": self.glove,
            "model.backbone_weights": self.backbone_weights,
        }

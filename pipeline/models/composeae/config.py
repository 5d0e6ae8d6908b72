"""Options of the ComposeAE family (Anwaar et al., WACV 2021; defaults checked against
ecom-research/ComposeAE main.py, img_text_composition_models.py and its README's Fashion200k command)."""

from __future__ import annotations

from dataclasses import dataclass

from coir.pipeline.models.config import ModelConfig

LOSSES = ("batch_classification", "soft_triplet")


@dataclass
class ComposeAEModelConfig(ModelConfig):
    family: str = "composeae"
    name: str = "composeae"
    # a local Hugging Face BERT folder (config + weights + tokenizer), frozen (required); the paper's is
    # BERT-Base uncased through bert-as-service
    text_model: str | None = None
    # the sentence feature = mean over the real tokens ([CLS] and [SEP] included) of this hidden layer:
    # bert-as-service's defaults (pooling_strategy REDUCE_MEAN, pooling_layer -2, max_seq_len 25)
    text_layer: int = -2
    max_length: int = 25
    embed_dim: int = 512  # the image feature / complex space size
    backbone: str = "resnet18"
    backbone_weights: str | None = None  # local torchvision ResNet state-dict file; random without
    image_size: int = 224  # centre crop
    resize: int = 224  # shorter side before the crop
    image_dropout: float = 0.5  # in the image half of each complex projection
    # the reference's 1-d convolutional mapping: Conv1d(5 -> conv_channels, 3), AdaptiveMaxPool1d(conv_pool)
    conv_channels: int = 64
    conv_pool: int = 16
    # θ = linear_weight * ρ(linear branch) + conv_weight * ρ_conv(conv branch), both learnable
    linear_weight: float = 10.0
    conv_weight: float = 1.0
    normalize_scale: float = 4.0  # the learnable s of the normalisation layer on both sides
    learnable_scale: bool = True
    # base: batch_classification (the published runs) or soft_triplet (every other target a negative)
    loss: str = "batch_classification"
    image_reconstruction_weight: float = 0.1
    text_reconstruction_weight: float = 0.1
    symmetry_weight: float = 0.01

    def input_paths(self) -> dict[str, str | None]:
        return super().input_paths() | {
            "model.text_model": self.text_model,
            "model.backbone_weights": self.backbone_weights,
        }

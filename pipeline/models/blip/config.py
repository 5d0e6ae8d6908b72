"""Options of the BLIP family: CASE and its image-only / text-only / sum baselines."""

from __future__ import annotations

from dataclasses import dataclass

from coir.pipeline.models.config import ModelConfig


@dataclass
class BlipModelConfig(ModelConfig):
    family: str = "blip"
    name: str = "case"  # case | image-only | text-only | sum
    # tiny (tests, demo) | base (ViT-B/16 + BERT-base, 384 px); default tiny. With model.pretrained or
    # model.init_from the architecture is the checkpoint's: a preset given then must match it
    preset: str | None = None
    pretrained: str | None = None  # local Hugging Face BLIP retrieval checkpoint directory (`coir convert`)
    allow_partial: bool = False  # let model.pretrained lack weights the model uses (they stay random; logged)
    tokenizer: str | None = None  # local tokenizer directory; default: the pretrained one's
    image_size: int | None = None  # default: the preset's (tiny 64, base 384)
    # null: the checkpoint's learned temperature when it has one (a coir export, a `coir convert`ed
    # original BLIP .pth), else BLIP's initial 0.07; a number overrides the checkpoint's
    temperature: float | None = None
    learnable_temperature: bool = True
    reverse_weight: float = 0.5  # auxiliary reverse-query objective (target + text -> reference)
    symmetric: bool = False  # add the target -> query direction to the contrastive loss
    freeze_vision: bool = False
    freeze_projections: bool = False
    gradient_checkpointing: bool = False
    # sdpa: attention in torch's fused kernels (pipeline/models/blip/attention.py); eager: transformers'
    # own modules, which keep every [tokens x tokens] score matrix for the backward. (How attention is
    # computed, the same weights either way; MANME's model.attention is another option of that family.)
    attention: str = "sdpa"
    max_length: int = 40  # tokens per text (padded to this length, truncated beyond); BLIP retrieval: 35
    # BLIP's pre_caption (lower case, drop . ! " ( ) * # : ; ~, keep the first max_words words) on every
    # text, in training and evaluation alike; BLIP retrieval finetuning: 30. null: texts as they are
    max_words: int | None = None
    # embedding size; default: the preset's (tiny 64, base 256); with a checkpoint it must match its own
    projection_dim: int | None = None

    def input_paths(self) -> dict[str, str | None]:
        return super().input_paths() | {
            "model.tokenizer": self.tokenizer,
            "model.pretrained": self.pretrained,
        }

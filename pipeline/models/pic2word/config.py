"""Options of the Pic2Word family (Saito et al., CVPR 2023; defaults checked against
google-research/composed_image_retrieval: src/params.py, model/model.py IM2TEXT, src/data.py prompts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coir.pipeline.models.config import ModelConfig

IMAGE_TRANSFORMS = ("clip", "targetpad")

# the prompt of each benchmark at test time; src/data.py: CIRR 'a photo of * , {caption}', FashionIQ
# 'a photo of * , {cap2} and {cap1}' (the two captions reversed: the FashionIQ benchmark's
# caption_template "{c2} and {c1}" gives that order). The reference has no CIRCO: its entry is SEARLE's
# template ("a photo of $ that {caption}", miccunifi/SEARLE), with Pic2Word's pseudo word
REFERENCE_PROMPTS = {
    "cirr": "a photo of * , {caption}",
    "fashioniq": "a photo of * , {caption}",
    "circo": "a photo of * that {caption}",
}


@dataclass
class Pic2WordModelConfig(ModelConfig):
    family: str = "pic2word"
    name: str = "pic2word"  # pic2word | image-only | text-only (the zero-shot baselines on the same CLIP)
    # an open_clip model name (its architecture from open_clip's registered configs): the paper's
    # backbone is OpenAI's ViT-L/14, whose weights need QuickGELU ...
    clip_model: str = "ViT-L-14-quickgelu"
    # ... or an open_clip architecture given in full ({embed_dim, vision_cfg, text_cfg, quick_gelu});
    # exports always carry it, so nothing is looked up or downloaded when one is loaded
    clip_config: dict[str, Any] | None = None
    clip_pretrained: str | None = None  # local open_clip checkpoint file of the frozen CLIP; random without
    # a Pic2Word checkpoint of the reference code (its "state_dict_img2text") or a plain state dict of
    # the mapping network; random without
    mapping_pretrained: str | None = None
    # the mapping network IM2TEXT: `layers` blocks of Linear(hidden_dim), Dropout, ReLU, then a Linear to
    # the text tower's token width (--middle_dim 512, --n-layer 2, --droprate 0.1)
    hidden_dim: int = 512
    layers: int = 2
    dropout: float = 0.1
    # the token the mapped image takes the place of; it must be one token of open_clip's BPE vocabulary,
    # standing alone in the prompts (spaces around it: "*," would be another token)
    pseudo_word: str = "*"
    train_prompt: str = "a photo of *"  # src/trainer.py get_text_features
    prompt: str = "a photo of * , {caption}"  # benchmarks without an entry in `prompts`, and coir search
    prompts: dict[str, str] = field(default_factory=lambda: dict(REFERENCE_PROMPTS))
    image_transform: str = "clip"  # clip (resize, centre crop: the reference's default) | targetpad
    target_ratio: float = 1.25  # --target-pad's TargetPad(1.25)
    image_size: int | None = None  # None: the CLIP architecture's

    def input_paths(self) -> dict[str, str | None]:
        return super().input_paths() | {
            "model.clip_pretrained": self.clip_pretrained,
            "model.mapping_pretrained": self.mapping_pretrained,
        }

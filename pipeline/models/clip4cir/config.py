"""Options of the CLIP4Cir family (Baldrati et al., CVPRW 2022 / TOMM 2023; defaults checked against
ABaldrati/CLIP4Cir src/combiner_train.py and clip_fine_tune.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coir.pipeline.models.config import ModelConfig

MODES = ("combiner", "sum")
IMAGE_TRANSFORMS = ("targetpad", "squarepad", "clip")
CLIP_ENCODERS = ("both", "text", "image")


@dataclass
class Clip4CirModelConfig(ModelConfig):
    family: str = "clip4cir"
    name: str = "clip4cir"
    # combiner: the learned Combiner on CLIP features (the reference's stage 2);
    # sum: l2n(image + text) of the raw CLIP features (zero-shot, and the reference's stage 1 objective)
    mode: str = "combiner"
    # an open_clip model name (its architecture from open_clip's registered configs) ...
    clip_model: str = "RN50x4"
    # ... or an open_clip architecture given in full ({embed_dim, vision_cfg, text_cfg, quick_gelu});
    # exports always carry it, so nothing is looked up or downloaded when one is loaded
    clip_config: dict[str, Any] | None = None
    clip_pretrained: str | None = None  # local open_clip checkpoint file; random weights without
    freeze_clip: bool = True  # the reference trains the Combiner on frozen (fine-tuned) CLIP features
    # the CLIP towers that train when freeze_clip is false (clip_fine_tune.py's --encoder): both (the
    # TOMM 2023 paper and the README's command), text (the CVPRW 2022 paper) or image
    clip_encoders: str = "both"
    projection_dim: int = 2560  # 640 * 4 (--projection-dim, RN50x4)
    hidden_dim: int = 5120  # 640 * 8 (--hidden-dim)
    dropout: float = 0.5
    logit_scale: float = 100.0  # fixed factor on the cosine similarities before the cross-entropy
    image_transform: str = "targetpad"  # targetpad | squarepad | clip (resize + centre crop)
    target_ratio: float = 1.25  # TargetPad: pad images whose aspect ratio exceeds this
    image_size: int | None = None  # None: the CLIP architecture's

    def input_paths(self) -> dict[str, str | None]:
        return super().input_paths() | {"model.clip_pretrained": self.clip_pretrained}

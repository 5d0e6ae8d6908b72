"""CLIP4Cir: an open_clip model's image and text features, fused by the Combiner or summed.

    i, t   = CLIP image features of the reference, CLIP text features of the caption (raw, unnormalised)
    combiner mode (src/combiner.py):
        p_t, p_i = Dropout(ReLU(Lin_t(t))), Dropout(ReLU(Lin_i(i)))          [B, projection_dim] each
        c        = [p_t, p_i]
        lambda   = sigmoid(Lin(Dropout(ReLU(Lin(c)))))                         [B, 1]
        q        = l2n(Lin_out(Dropout(ReLU(Lin_c(c)))) + lambda * t + (1 - lambda) * i)
    sum mode (clip_fine_tune.py's element_wise_sum; the zero-shot baseline):  q = l2n(i + t)
    target = l2n(CLIP image features);  loss = cross-entropy over the batch of logit_scale * q . target

With freeze_clip the CLIP towers are a fixed feature extractor (eval mode, no gradients) and only the
Combiner trains, as the reference's combiner_train.py; without it the towers named by clip_encoders
train too (clip_fine_tune.py with mode: sum; a frozen image tower is then still a frozen part).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coir.common.errors import ConfigError
from coir.pipeline.losses import batch_cross_entropy, gather_with_grad
from coir.pipeline.models.base import RetrievalModel
from coir.pipeline.models.clip4cir.config import CLIP_ENCODERS, IMAGE_TRANSFORMS, MODES, Clip4CirModelConfig
from coir.pipeline.models.components.clip import FrozenImageFeatures
from coir.pipeline.models.components.clip_processor import ClipProcessor
from coir.pipeline.models.frozen import FrozenPart, frozen_identity, weights_sha256


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"key 'model.{key}': must be one of {', '.join(choices)}, got {value!r}")


class Combiner(nn.Module):
    """The learned fusion of CLIP image and text features (src/combiner.py's combine_features)."""

    def __init__(self, feature_dim: int, projection_dim: int, hidden_dim: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.text_projection = nn.Linear(feature_dim, projection_dim)
        self.image_projection = nn.Linear(feature_dim, projection_dim)
        self.combiner_layer = nn.Linear(2 * projection_dim, hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, feature_dim)
        self.dynamic_scalar = nn.Sequential(
            nn.Linear(2 * projection_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, 1),
            nn.Sigmoid(),
        )
        self.dropout = nn.Dropout(dropout)  # stateless: one module serves the reference's three

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Raw CLIP features [B, D] each -> the predicted target feature, L2-normalised [B, D]."""
        dtype = self.output_layer.weight.dtype  # bf16 under DeepSpeed's bf16; features may come as float32
        image, text = image.to(dtype), text.to(dtype)
        projected_text = self.dropout(F.relu(self.text_projection(text)))
        projected_image = self.dropout(F.relu(self.image_projection(image)))
        joint = torch.cat([projected_text, projected_image], dim=-1)
        combined = self.dropout(F.relu(self.combiner_layer(joint)))
        weight = self.dynamic_scalar(joint)
        return F.normalize(self.output_layer(combined) + weight * text + (1 - weight) * image, dim=-1)


class Clip4Cir(RetrievalModel):
    family = "clip4cir"
    name = "clip4cir"

    def __init__(self, cfg: Clip4CirModelConfig, clip: nn.Module, clip_config: dict[str, Any]) -> None:
        """clip: an open_clip CLIP built from clip_config (the full architecture, kept for exports)."""
        super().__init__()
        _check_choice("mode", cfg.mode, MODES)
        _check_choice("image_transform", cfg.image_transform, IMAGE_TRANSFORMS)
        _check_choice("clip_encoders", cfg.clip_encoders, CLIP_ENCODERS)
        self.cfg = cfg
        self.clip_config = clip_config
        self.clip = clip
        self.image_frozen = cfg.freeze_clip or cfg.clip_encoders == "text"
        self.text_frozen = cfg.freeze_clip or cfg.clip_encoders == "image"
        feature_dim = int(clip_config["embed_dim"])
        self.combiner = (
            Combiner(feature_dim, cfg.projection_dim, cfg.hidden_dim, cfg.dropout)
            if cfg.mode == "combiner"
            else None
        )
        self.configure()

    def configure(self) -> None:
        """The towers that train; CLIP's own temperature is not part of this loss and never does."""
        for name, parameter in self.clip.named_parameters():
            frozen = self.image_frozen if name.startswith("visual.") else self.text_frozen
            parameter.requires_grad_(not frozen and name != "logit_scale")
        self.train(self.training)

    def train(self, mode: bool = True) -> Clip4Cir:
        """A frozen tower stays in eval mode (its BatchNorm statistics fixed, RN variants), so an image's
        feature does not depend on its batch and may be computed once and cached."""
        super().train(mode)
        for name, child in self.clip.named_children():
            if self.image_frozen if name == "visual" else self.text_frozen:
                child.eval()
        return self

    # ---- encoders ------------------------------------------------------------------------------
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Raw CLIP image features [B, D] (float32)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.image_frozen):
            return self.clip.encode_image(images).float()

    def text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.text_frozen):
            return self.clip.encode_text(input_ids).float()

    def frozen_image_features(self) -> FrozenPart | None:
        """The image tower when it does not train (freeze_clip, or clip_encoders: text)."""
        if not self.image_frozen:
            return None
        identity = frozen_identity(
            "open_clip encode_image, raw features",  # the digest covers the architecture
            weights_sha256(self.clip.visual),
            self.processor().image_settings(),
        )
        return FrozenPart(FrozenImageFeatures(self.clip), identity)

    def encode_target(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_features(images), dim=-1)

    def encode_target_features(self, features: torch.Tensor) -> torch.Tensor:
        if not self.image_frozen:
            raise ConfigError("this CLIP4Cir model trains its image tower: it takes images, not features")
        return F.normalize(features.float(), dim=-1)

    def _raw_features(self, batch: dict[str, torch.Tensor], role: str) -> torch.Tensor:
        if f"{role}_feature" in batch:
            return batch[f"{role}_feature"].float()
        return self.image_features(batch[f"{role}_image"])

    def combine(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Raw image and text features [B, D] -> the L2-normalised query embedding [B, D]."""
        if self.combiner is None:
            return F.normalize(image + text, dim=-1)
        return self.combiner(image, text)

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.combine(self._raw_features(batch, "query"), self.text_features(batch["input_ids"]))

    # ---- objective -----------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Cross-entropy of each query over the batch's targets (gathered from every rank)."""
        query = self.encode_query(batch)
        targets, offset = gather_with_grad(F.normalize(self._raw_features(batch, "target"), dim=-1))
        logits = self.cfg.logit_scale * query.float() @ targets.T  # the Combiner's output may be bf16
        return {"loss": batch_cross_entropy(logits, offset)}

    def processor(self) -> ClipProcessor:
        cfg = self.cfg
        image_size = cfg.image_size or self.clip_image_size()
        context_length = int(self.clip_config["text_cfg"].get("context_length", 77))
        return ClipProcessor(image_size, context_length, cfg.image_transform, cfg.target_ratio)

    def clip_image_size(self) -> int:
        size = self.clip_config["vision_cfg"].get("image_size", 224)
        return int(size if isinstance(size, int) else size[0])

    def export_config(self) -> dict[str, Any]:
        model = dataclasses.asdict(self.cfg)
        # the weights travel in the export, the architecture in full: nothing is read or looked up again
        model.update(clip_pretrained=None, init_from=None, clip_config=self.clip_config)
        return {"model": model}


class Clip4CirImageOnly(Clip4Cir):
    """The reference's own CLIP image feature as the query (the CLIP image-only baseline)."""

    name = "image-only"

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(self._raw_features(batch, "query"), dim=-1)


class Clip4CirTextOnly(Clip4Cir):
    """The caption's CLIP text feature as the query (the CLIP text-only baseline)."""

    name = "text-only"

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(self.text_features(batch["input_ids"]), dim=-1)


class Clip4CirSum(Clip4Cir):
    """l2n(i + t) of the raw CLIP features, whatever the mode (the zero-shot "image + text" baseline;
    what mode: sum computes)."""

    name = "sum"

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(
            self._raw_features(batch, "query") + self.text_features(batch["input_ids"]), dim=-1
        )


BASELINE_MODELS: dict[str, type[Clip4Cir]] = {
    "image-only": Clip4CirImageOnly,
    "text-only": Clip4CirTextOnly,
    "sum": Clip4CirSum,
}
# every model of the family by name (ModelConfig.name; an export's "name"): the fused one first
MODELS: dict[str, type[Clip4Cir]] = {"clip4cir": Clip4Cir, **BASELINE_MODELS}

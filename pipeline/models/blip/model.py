"""What CASE and its baselines share: the BLIP parts, temperature, loss assembly, freezing, export config."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coir.common.errors import ConfigError
from coir.pipeline.losses import contrastive_loss
from coir.pipeline.models.base import RetrievalModel
from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.blip.parts import BlipParts
from coir.pipeline.models.blip.processor import BlipProcessor

TEMPERATURE_RANGE = (0.001, 0.5)  # BLIP clamps its learnable temperature to this range
BLIP_TEMPERATURE = 0.07  # BLIP_Retrieval's initial temp (salesforce/BLIP models/blip_retrieval.py)


class BlipRetrievalModel(RetrievalModel):
    """Base of the BLIP-backbone models. Subclasses define encode_query and `_loss_pairs`."""

    family = "blip"
    #: which BLIP parts the subclass keeps (the others are dropped)
    parts_used: tuple[str, ...] = ("vision_model", "text_encoder", "vision_proj", "text_proj")

    def __init__(self, cfg: BlipModelConfig, parts: BlipParts, tokenizer: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.blip_config = parts.config
        self.tokenizer = tokenizer
        for name in self.parts_used:
            setattr(self, name, getattr(parts, name))
        native = self.blip_config.vision_config.image_size
        self.image_size = int(cfg.image_size or native)
        self.interpolate_pos = self.image_size != native
        # shape [1], not a 0-dim scalar: DeepSpeed's fp32 gradient clipping (ZeRO stage 0)
        # multiplies every gradient in place by a [1]-shaped factor, which a 0-dim gradient refuses
        start = torch.full((1,), BLIP_TEMPERATURE if cfg.temperature is None else float(cfg.temperature))
        if cfg.learnable_temperature:
            self.temp = nn.Parameter(start)
        else:
            self.register_buffer("temp", start, persistent=False)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # exports and checkpoints written before the temperature became [1]-shaped hold it 0-dim
        old = state_dict.get(prefix + "temp")
        if old is not None and old.ndim == 0:
            state_dict[prefix + "temp"] = old.reshape(1)
        super()._load_from_state_dict(state_dict, prefix, *args)

    # ---- options -------------------------------------------------------------------------------
    def configure(self) -> None:
        """Apply the attention kind, freezing and gradient checkpointing from the config (call after
        building)."""
        from coir.pipeline.models.blip.attention import set_attention

        cfg = self.cfg
        try:
            set_attention(self, cfg.attention)
        except ValueError as error:
            raise ConfigError(f"key 'model.attention': {error}") from None
        if cfg.freeze_vision and hasattr(self, "vision_model"):
            self.vision_model.requires_grad_(False)
        if cfg.freeze_projections:
            for name in self.projection_names():
                getattr(self, name).requires_grad_(False)
        if cfg.gradient_checkpointing:
            from torch.utils.checkpoint import checkpoint

            # BlipTextModel does not declare checkpointing support, but its layers are checkpointable
            # GradientCheckpointingLayers: switch them on directly, for both towers alike
            func = functools.partial(checkpoint, use_reentrant=False)
            for name in ("vision_model", "text_encoder"):
                if hasattr(self, name):
                    getattr(self, name)._set_gradient_checkpointing(
                        enable=True, gradient_checkpointing_func=func
                    )

    def projection_names(self) -> list[str]:
        return [n for n in ("vision_proj", "text_proj", "query_proj") if hasattr(self, n)]

    def temperature(self) -> torch.Tensor:
        return self.temp.clamp(*TEMPERATURE_RANGE).squeeze(0)

    # ---- shared encoders -----------------------------------------------------------------------
    def vision_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> all vision tokens [B, 1 + patches, Hv] (after BLIP's post-layernorm)."""
        frozen = not any(p.requires_grad for p in self.vision_model.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            out = self.vision_model(pixel_values=images, interpolate_pos_encoding=self.interpolate_pos)
        return out.last_hidden_state

    def image_embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Vision tokens -> target embedding: [CLS] -> vision_proj -> L2 norm."""
        return F.normalize(self.vision_proj(tokens[:, 0]), dim=-1)

    def encode_target(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_embed(self.vision_tokens(images))

    # ---- objective -----------------------------------------------------------------------------
    def _loss_pairs(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]:
        """(query, target) embeddings of the main objective, and of the reverse one (or None)."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Contrastive loss query -> target (negatives gathered from all ranks), optionally averaged
        with target -> query (`symmetric`), plus `reverse_weight` x the reverse-query term."""
        (q, t), rev = self._loss_pairs(batch)
        temp = self.temperature()
        out: dict[str, torch.Tensor] = {}
        q2t = contrastive_loss(q, t, temp)
        out["loss_q2t"] = q2t
        total = q2t
        if self.cfg.symmetric:
            t2q = contrastive_loss(t, q, temp)
            out["loss_t2q"] = t2q
            total = (q2t + t2q) / 2
        if rev is not None:
            rq, rt = rev
            reverse = contrastive_loss(rq, rt, temp)
            if self.cfg.symmetric:
                reverse = (reverse + contrastive_loss(rt, rq, temp)) / 2
            out["loss_reverse"] = reverse
            total = total + self.cfg.reverse_weight * reverse
        result = {"loss": total}
        result.update({k: v.detach() for k, v in out.items()})
        result["temperature"] = temp.detach()
        return result

    # ---- interface -----------------------------------------------------------------------------
    def processor(self) -> BlipProcessor:
        return BlipProcessor(
            image_size=self.image_size,
            tokenizer=self.tokenizer,
            max_length=self.cfg.max_length,
            max_words=self.cfg.max_words,
        )

    def export_config(self) -> dict[str, Any]:
        model = dataclasses.asdict(self.cfg)
        model.update(name=self.name, pretrained=None, tokenizer=None, image_size=self.image_size)
        # a fixed temperature is no saved weight: the config carries the value in use
        model["temperature"] = float(self.temp.detach().float().item())
        return {"model": model, "blip": self.blip_config.to_dict()}

    def parts(self) -> BlipParts:
        """The BLIP parts this model holds, as a BlipParts shell sharing the modules (not copies)."""
        shell = BlipParts.__new__(BlipParts)
        nn.Module.__init__(shell)
        shell.config = self.blip_config
        for name in ("vision_model", "text_encoder", "vision_proj", "text_proj"):
            if hasattr(self, name):
                setattr(shell, name, getattr(self, name))
        return shell

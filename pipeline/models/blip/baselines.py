"""Single-modality baselines on CASE's backbone, for the modality-redundancy analysis.

image-only: query = the reference image through the vision tower -> its own projection (query_proj);
            the text is ignored. Derived from CASE: query_proj = CASE's vision_proj, i.e. the query is
            CASE's target embedding of the reference.
text-only:  query = the text encoder WITHOUT cross-attention ([CLS] first, as BLIP's unimodal text
            encoder) -> text_proj; the image is ignored. Derived from CASE: the same weights, no image.
sum:        query = l2n(image-only query + text-only query): the normalised sum of BLIP's two unimodal
            (ITC) embeddings, each L2-normalised as BLIP compares them; no fusion is learned.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.blip.model import BlipRetrievalModel
from coir.pipeline.models.blip.parts import BlipParts


class ImageOnly(BlipRetrievalModel):
    name = "image-only"
    parts_used = ("vision_model", "vision_proj")

    def __init__(self, cfg: BlipModelConfig, parts: BlipParts, tokenizer: Any) -> None:
        super().__init__(cfg, parts, tokenizer)
        self.query_proj = copy.deepcopy(self.vision_proj)

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(self.query_proj(self.vision_tokens(batch["query_image"])[:, 0]), dim=-1)

    def _loss_pairs(self, batch: dict[str, torch.Tensor]):
        ref, tgt = batch["query_image"], batch["target_image"]
        n = ref.shape[0]
        cls = self.vision_tokens(torch.cat([ref, tgt]))[:, 0]
        queries = F.normalize(self.query_proj(cls), dim=-1)
        embeds = F.normalize(self.vision_proj(cls), dim=-1)
        rev = (queries[n:], embeds[:n]) if self.cfg.reverse_weight > 0 else None
        return (queries[:n], embeds[n:]), rev


class TextOnly(BlipRetrievalModel):
    name = "text-only"

    def __init__(self, cfg: BlipModelConfig, parts: BlipParts, tokenizer: Any) -> None:
        super().__init__(cfg, parts, tokenizer)
        # the cross-attention layers are never used without an image: keep them (so CASE weights load
        # one-to-one) but frozen, so no optimizer or DDP sees parameters without gradients
        for name, module in self.text_encoder.named_modules():
            if name.endswith("crossattention"):
                module.requires_grad_(False)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask)
        return F.normalize(self.text_proj(out.last_hidden_state[:, 0]), dim=-1)

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encode_text(batch["input_ids"], batch["attention_mask"])

    def _loss_pairs(self, batch: dict[str, torch.Tensor]):
        # no reverse term: without the image the reverse query would equal the forward one
        return (
            self.encode_text(batch["input_ids"], batch["attention_mask"]),
            self.encode_target(batch["target_image"]),
        ), None


def copy_parts(parts: BlipParts) -> BlipParts:
    shell = BlipParts.__new__(BlipParts)
    nn.Module.__init__(shell)
    shell.config = copy.deepcopy(parts.config)
    for name, module in parts.named_children():
        setattr(shell, name, copy.deepcopy(module))
    return shell


class ImageTextSum(TextOnly):
    """The zero-shot "image + text" baseline: l2n(l2n(vision_proj(v_cls)) + l2n(text_proj(t_cls)))."""

    name = "sum"

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        image = self.encode_target(batch["query_image"])
        return F.normalize(image + self.encode_text(batch["input_ids"], batch["attention_mask"]), dim=-1)

    def _loss_pairs(self, batch: dict[str, torch.Tensor]):
        n = batch["query_image"].shape[0]
        embeds = self.image_embed(
            self.vision_tokens(torch.cat([batch["query_image"], batch["target_image"]]))
        )
        text = self.encode_text(batch["input_ids"], batch["attention_mask"])
        return (F.normalize(embeds[:n] + text, dim=-1), embeds[n:]), None

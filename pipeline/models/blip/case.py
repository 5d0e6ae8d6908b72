"""CASE: the modification text, encoded by BLIP's image-grounded text encoder, attends to the reference image.

Query = text encoder over the text with the first token replaced by [ENC], cross-attending to every
vision token of the reference image; first output token -> text_proj -> L2 norm.
Target = vision [CLS] -> vision_proj -> L2 norm.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.blip.model import BlipRetrievalModel
from coir.pipeline.models.blip.parts import BlipParts
from coir.pipeline.models.blip.tokenizer import enc_token_id


class CASE(BlipRetrievalModel):
    name = "case"

    def __init__(self, cfg: BlipModelConfig, parts: BlipParts, tokenizer: Any) -> None:
        super().__init__(cfg, parts, tokenizer)
        self.enc_token_id = enc_token_id(tokenizer, self.blip_config.text_config.vocab_size)

    def with_encoder_token(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.clone()
        ids[:, 0] = self.enc_token_id
        return ids

    def grounded_query(
        self, vision_tokens: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Image-grounded text encoding -> L2-normalised query [B, D]."""
        image_mask = torch.ones(vision_tokens.shape[:2], dtype=torch.long, device=vision_tokens.device)
        out = self.text_encoder(
            input_ids=self.with_encoder_token(input_ids),
            attention_mask=attention_mask,
            encoder_hidden_states=vision_tokens,
            encoder_attention_mask=image_mask,
        )
        return F.normalize(self.text_proj(out.last_hidden_state[:, 0]), dim=-1)

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = self.vision_tokens(batch["query_image"])
        return self.grounded_query(tokens, batch["input_ids"], batch["attention_mask"])

    def _loss_pairs(self, batch: dict[str, torch.Tensor]):
        ref, tgt = batch["query_image"], batch["target_image"]
        ids, mask = batch["input_ids"], batch["attention_mask"]
        n = ref.shape[0]
        tokens = self.vision_tokens(torch.cat([ref, tgt]))  # one vision pass for both images
        ref_tokens, tgt_tokens = tokens[:n], tokens[n:]
        if self.cfg.reverse_weight > 0:
            # forward (reference + text) and reverse (target + text) queries in one text pass
            queries = self.grounded_query(tokens, torch.cat([ids, ids]), torch.cat([mask, mask]))
            embeds = self.image_embed(tokens)
            return (queries[:n], embeds[n:]), (queries[n:], embeds[:n])
        return (self.grounded_query(ref_tokens, ids, mask), self.image_embed(tgt_tokens)), None

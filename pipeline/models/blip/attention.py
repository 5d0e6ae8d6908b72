"""BLIP's attention through torch's fused scaled-dot-product attention.

transformers' BLIP towers compute attention eagerly: the [B, heads, T, T] scores, their softmax and the
dropout mask are materialised in memory and kept for the backward. At 384 px the vision tower has 577
tokens, so that is 12 x 577 x 577 values per image and layer, read and written several times: on an H200
the base preset trained at 9.6 % MFU with 41 GiB for a batch of 64 (benchmarks/RESULTS.md).
`torch.nn.functional.scaled_dot_product_attention` computes the same attention in fused kernels
(flash or memory-efficient on GPUs) without the score matrix.

`set_attention(module, "sdpa")` switches every BLIP attention inside `module` to the subclasses below
(and "eager" back to transformers' classes): the same parameters and state-dict keys, the same
arithmetic up to float rounding (tests/test_blip_attention.py compares them with transformers' own
modules in training and evaluation, masks included). The attention probabilities are not returned
(None): nothing in coir asks for them. `model.attention: eager` keeps transformers' code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.blip.modeling_blip import BlipAttention
from transformers.models.blip.modeling_blip_text import BlipTextSelfAttention

ATTENTION_CHOICES = ("sdpa", "eager")


class SdpaBlipAttention(BlipAttention):
    """The vision tower's self-attention (no mask)."""

    def forward(self, hidden_states: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, None]:
        batch, tokens, width = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)
        context = F.scaled_dot_product_attention(
            query, key, value, dropout_p=self.dropout.p if self.training else 0.0, scale=self.scale
        )
        return self.projection(context.transpose(1, 2).reshape(batch, tokens, width)), None


class SdpaBlipTextSelfAttention(BlipTextSelfAttention):
    """The text tower's self- and cross-attention, with the additive mask transformers passes."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        if past_key_values is not None:  # a generation cache: transformers' code handles it
            context, _ = super().forward(
                hidden_states, attention_mask, encoder_hidden_states, encoder_attention_mask, past_key_values
            )
            return context, None
        cross = encoder_hidden_states is not None
        # the eager module's choice of mask, kept as it is: a cross-attention layer gets its mask as
        # encoder_attention_mask (the text layer passes none, so cross-attention is unmasked in both)
        mask = encoder_attention_mask if cross else attention_mask
        source = encoder_hidden_states if cross else hidden_states
        head = self.attention_head_size
        query = self.query(hidden_states).view(*hidden_states.shape[:-1], -1, head).transpose(1, 2)
        key = self.key(source).view(*source.shape[:-1], -1, head).transpose(1, 2)
        value = self.value(source).view(*source.shape[:-1], -1, head).transpose(1, 2)
        if mask is not None:
            mask = mask.to(query.device)
            if mask.dtype != torch.bool:  # additive (0 or a large negative), as the eager module adds it;
                mask = mask.to(query.dtype)  # a boolean one (True: attend) means the same to SDPA as is
        context = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=self.dropout.p if self.training else 0.0
        )
        return context.transpose(1, 2).reshape(*hidden_states.shape[:-1], self.all_head_size), None


SWAPS: dict[type, type] = {
    BlipAttention: SdpaBlipAttention,
    BlipTextSelfAttention: SdpaBlipTextSelfAttention,
}


def set_attention(module: nn.Module, kind: str) -> int:
    """Switch every BLIP attention module inside `module` to `kind` (sdpa or eager) in place, whichever
    it had (a model built from an export or init_from arrives with its source's); returns how many."""
    if kind not in ATTENTION_CHOICES:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_CHOICES)}, got {kind!r}")
    target = SWAPS if kind == "sdpa" else {sdpa: eager for eager, sdpa in SWAPS.items()}
    switched = 0
    for child in module.modules():
        new = target.get(type(child))
        if new is not None:
            child.__class__ = new
            switched += 1
    return switched

"""Explicit Matching (EM) and Implicit Similarity (IS), the joint score of ARTEMIS, and of every level
of CMAP and MANME (naver/artemis artemis_model.py; Code_CMAP cmap.py; MANME MANME_modle.py).

    A(m) = softmax(Lin(ReLU(Lin(m))))                  an attention over the D features of the text
    EM   = < l2n(Lin(m)), l2n(A_EM(m) * t) >           does the target show what the text asks for
    IS   = < l2n(A_IS(m) * r), l2n(A_IS(m) * t) >       does it keep what the text leaves alone

Both terms expand into matrix products (|a * t|^2 = (a^2) . (t^2)), so scoring a query chunk against
a gallery chunk needs four [q, g] products, never the [q, g, D] tensor the references broadcast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-12  # F.normalize's floor on a norm

QUERY_KEYS = ("em_weight", "em_attention_sq", "is_weight", "is_attention_sq")
# [q, g] float32 blocks alive at once in em_is_score: four products and two quotients
EM_IS_BYTES_PER_PAIR = 24


class FeatureAttention(nn.Module):
    """A(m) = softmax over the D features of Lin(ReLU(Lin(m)))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.layers(text).softmax(dim=-1)


def em_is_query_state(
    reference: torch.Tensor, em_text: torch.Tensor, a_em: torch.Tensor, a_is: torch.Tensor
) -> dict[str, torch.Tensor]:
    """What scoring needs of a query, each [B, D]: EM's weights l2n(Lin(m)) x A_EM and A_EM^2; IS's
    weights A_IS^2 x r / |A_IS x r| and A_IS^2. em_text is l2n(Lin(m))."""
    is_norm = (a_is * reference).norm(dim=-1, keepdim=True).clamp_min(EPS)
    return {
        "em_weight": em_text * a_em,
        "em_attention_sq": a_em.square(),
        "is_weight": a_is.square() * reference / is_norm,
        "is_attention_sq": a_is.square(),
    }


def em_is_score(query_state: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """EM + IS of every query [q] against every target [g, D] -> [q, g], as matrix products."""
    t, t_sq = targets, targets.square()
    em = query_state["em_weight"] @ t.T / (query_state["em_attention_sq"] @ t_sq.T).sqrt().clamp_min(EPS)
    is_ = query_state["is_weight"] @ t.T / (query_state["is_attention_sq"] @ t_sq.T).sqrt().clamp_min(EPS)
    return em + is_


def attended(attention: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """l2n(A * x) row by row ([B, D] each): the references' `apply_attention` on matching pairs."""
    return F.normalize(attention * features, dim=-1)

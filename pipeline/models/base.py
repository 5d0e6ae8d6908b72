"""The interface every retrieval model implements (CASE, its baselines, the other methods).

Training, checkpoints, evaluation and launching only use what is defined here; none of them
special-cases a model.

Batches are dicts of tensors, built in DataLoader workers by the model's `Processor`:

    query_image      float [B, 3, H, W]   the reference image, already transformed
    target_image     float [B, 3, H, W]
    input_ids        long  [B, L]         the modification text, tokenised
    attention_mask   long  [B, L]

Ranking goes through `score(query_state, gallery_state)` so that models which score a query
against a candidate jointly (the ARTEMIS family) plug in; the default is a dot product of the
L2-normalised embeddings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

import torch
from PIL import Image
from torch import nn


class Processor(Protocol):
    """Picklable: turns raw inputs into tensors. Runs inside DataLoader workers."""

    def image(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> float tensor [3, H, W]."""
        ...

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """A list of texts -> {"input_ids": [B, L], "attention_mask": [B, L]} (padded)."""
        ...


class RetrievalModel(nn.Module, ABC):
    """A composed-image-retrieval model: (reference image, text) -> target image."""

    #: name in the model registry; written into exported checkpoints
    name: str = ""

    @abstractmethod
    def encode_query(
        self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """[B, 3, H, W] reference images + tokenised texts -> query state [B, D]."""

    @abstractmethod
    def encode_target(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] candidate images -> gallery state [N, D]."""

    def score(self, query_state: torch.Tensor, gallery_state: torch.Tensor) -> torch.Tensor:
        """[Q, D] x [N, D] -> similarities [Q, N]. Callers pass chunks; keep it memory-bounded."""
        return query_state @ gallery_state.T

    @abstractmethod
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The training objective on one batch: {"loss": total, <named terms>...}."""

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """= loss(batch), so that DDP / DeepSpeed wrappers (which call forward) drive training."""
        return self.loss(batch)

    @abstractmethod
    def processor(self) -> Processor:
        """The image transform and tokenizer this model expects."""

    @abstractmethod
    def export_config(self) -> dict[str, Any]:
        """JSON-ready arguments that rebuild this model (with its weights) from an export."""

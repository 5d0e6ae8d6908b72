"""TIRG: Text-Image Residual Gating (Vo et al., "Composing Text and Image for Image Retrieval - An
Empirical Odyssey", CVPR 2019; google/tirg).

    φx = Lin(avgpool(ResNet-18 layer4(image)))                      image feature [B, D]
    φt = Lin(dropout(LSTM(word ids) at the last real token))         text feature [B, D]
    c  = [φx, φt]                                                    [B, 2D]
    gate     = Lin(2D→D)(ReLU(BN(c)))
    residual = Lin(2D→D)(ReLU(Lin(2D→2D)(ReLU(BN(c)))))
    query    = a0 · σ(gate) ⊙ φx + a1 · residual                     a learnable, initially (1, 10)
    target   = φx of the target image

Queries and targets are L2-normalised and multiplied by a learnable scale s (initially 4) on both
sides before the loss; retrieval ranks by the dot product of the L2-normalised embeddings.

Losses (`model.loss`):
    batch_classification   cross-entropy of each query's row of s²·cos over the batch's targets
    soft_triplet           mean of log(1 + exp(d(a, p) - d(a, n))), d = squared Euclidean distance
                           of the scaled embeddings, over anchors a and every negative n:
        triplet=paper      anchors are the queries, the positive their target, the negatives every
                           other target of the (gathered) batch
        triplet=released   google/tirg's compute_soft_triplet_loss_: queries and targets are all
                           anchors (labels 0..B-1 twice), the positive is the pair's other half and
                           the negatives every other-labelled query or target. The reference draws 3
                           random negatives per anchor; here all of them are averaged (the loss's
                           expectation over those draws, without the sampling noise).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coir.common.errors import ConfigError
from coir.datasets.vocab import Vocabulary
from coir.pipeline.losses import batch_cross_entropy, gather_with_grad
from coir.pipeline.models.base import RetrievalModel
from coir.pipeline.models.components.cnn import PooledLinearEncoder
from coir.pipeline.models.components.glove import word_embedding
from coir.pipeline.models.components.processor import WordProcessor
from coir.pipeline.models.components.text import LSTMEncoder
from coir.pipeline.models.tirg.config import LOSSES, TRIPLETS, TirgModelConfig


class Composer(nn.Module):
    """TIRG's gated residual composition of an image feature and a text feature, both [B, D]."""

    def __init__(self, dim: int, gate_weight: float = 1.0, residual_weight: float = 10.0) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.BatchNorm1d(2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.residual = nn.Sequential(
            nn.BatchNorm1d(2 * dim),
            nn.ReLU(),
            nn.Linear(2 * dim, 2 * dim),
            nn.ReLU(),
            nn.Linear(2 * dim, dim),
        )
        # the reference's a has four entries; only the first two are used
        self.a = nn.Parameter(torch.tensor([gate_weight, residual_weight]))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        both = torch.cat([image, text], dim=1)
        return self.a[0] * torch.sigmoid(self.gate(both)) * image + self.a[1] * self.residual(both)


def soft_triplet(
    anchors: torch.Tensor, candidates: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
) -> torch.Tensor:
    """Mean over anchors i and candidates k with negative[i, k] of log(1 + exp(d(i, p_i) - d(i, k))):
    anchors [A, D], candidates [N, D], positive [A] (column of each anchor's positive), negative
    [A, N] bool; d = squared Euclidean distance."""
    distances = torch.cdist(anchors.float(), candidates.float()).square()
    to_positive = distances.gather(1, positive[:, None])
    terms = F.softplus(to_positive - distances)
    return terms[negative].mean()


class Tirg(RetrievalModel):
    family = "tirg"
    name = "tirg"

    def __init__(self, cfg: TirgModelConfig, vocab: Vocabulary, load_weights: bool = True) -> None:
        """load_weights: read the backbone (and GloVe) files named in cfg (False when the weights come
        from an export or another model right after)."""
        super().__init__()
        if cfg.loss not in LOSSES:
            raise ConfigError(f"key 'model.loss': must be one of {', '.join(LOSSES)}, got {cfg.loss!r}")
        if cfg.triplet not in TRIPLETS:
            raise ConfigError(
                f"key 'model.triplet': must be one of {', '.join(TRIPLETS)}, got {cfg.triplet!r}"
            )
        if cfg.text_encoder != "lstm":
            raise ConfigError(f"key 'model.text_encoder': TIRG's is lstm, got {cfg.text_encoder!r}")
        if cfg.freeze_backbone:
            raise ConfigError("key 'model.freeze_backbone': TIRG trains its whole image encoder")
        if vocab.tokenizer != "tirg":
            raise ConfigError(
                "key 'model.vocabulary': TIRG needs a vocabulary of its own tokenizer "
                f"(coir data vocab --tokenizer tirg), got a {vocab.tokenizer} one"
            )
        self.cfg = cfg
        self.vocab = vocab
        self.image_encoder = PooledLinearEncoder(
            cfg.backbone, cfg.backbone_weights if load_weights else None, cfg.embed_dim
        )
        if cfg.glove and load_weights:
            embedding, _ = word_embedding(vocab.words, cfg.word_dim, cfg.glove)
        else:  # TIRG's embedding: torch's N(0, 1) initialisation
            embedding = nn.Embedding(len(vocab), cfg.word_dim)
        embedding.requires_grad_(not cfg.freeze_word_embeddings)
        self.text_encoder = LSTMEncoder(
            embedding, cfg.embed_dim, cfg.lstm_hidden, cfg.text_dropout, normalize=False, output="last"
        )
        self.composer = Composer(cfg.embed_dim, cfg.gate_weight, cfg.residual_weight)
        # shape [1]: DeepSpeed's fp32 gradient clipping scales gradients in place by a [1] factor
        scale = torch.full((1,), float(cfg.normalize_scale))
        if cfg.learnable_scale:
            self.norm_scale = nn.Parameter(scale)
        else:
            self.register_buffer("norm_scale", scale, persistent=False)

    # ---- encoders ------------------------------------------------------------------------------
    def compose(self, images: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The unnormalised composed query feature [B, D]."""
        text = self.text_encoder(batch["input_ids"], batch["lengths"])
        return self.composer(self.image_encoder(images), text)

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(self.compose(batch["query_image"], batch), dim=-1)

    def encode_target(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_encoder(images), dim=-1)

    def scale(self) -> torch.Tensor:
        """The normalisation layer's scale s (a scalar)."""
        return self.norm_scale.squeeze(0)

    # ---- objective -----------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The configured loss (see `objective`). Queries and targets go through the image encoder in
        two passes, as the reference's (its BatchNorm sees each side alone)."""
        loss = self.objective(self.encode_query(batch), self.encode_target(batch["target_image"]))
        return {"loss": loss, "scale": self.scale().detach()}

    def objective(self, queries: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss on s * queries and s * targets (L2-normalised, [B, D], row i a pair); targets (and,
        for the released soft triplet, queries) gathered from every rank."""
        scale = self.scale()
        queries, targets = scale * queries, scale * targets
        all_targets, offset = gather_with_grad(targets)
        n, rows = all_targets.shape[0], torch.arange(queries.shape[0], device=queries.device) + offset
        if self.cfg.loss == "batch_classification":
            return batch_cross_entropy(queries @ all_targets.T, offset)
        if self.cfg.triplet == "paper":
            negative = torch.ones(len(rows), n, dtype=torch.bool, device=rows.device)
            negative[torch.arange(len(rows)), rows] = False
            return soft_triplet(queries, all_targets, rows, negative)
        all_queries, _ = gather_with_grad(queries)
        candidates = torch.cat([all_queries, all_targets])  # labels 0..n-1, twice
        labels = torch.arange(n, device=rows.device).repeat(2)
        anchors, anchor_labels = torch.cat([queries, targets]), torch.cat([rows, rows])
        negative = anchor_labels[:, None] != labels[None]
        positive = torch.cat([rows + n, rows])  # a query's target, a target's query
        return soft_triplet(anchors, candidates, positive, negative)

    def processor(self) -> WordProcessor:
        cfg = self.cfg
        return WordProcessor(
            self.vocab, cfg.max_length, cfg.image_size, cfg.resize, pad_square=cfg.pad_square
        )

    def export_config(self) -> dict[str, Any]:
        model = dataclasses.asdict(self.cfg)
        # the weights travel in the export: nothing is read from these paths again
        model.update(vocabulary=None, glove=None, backbone_weights=None, init_from=None)
        return {"model": model}

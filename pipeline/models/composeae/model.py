"""ComposeAE (Anwaar, Labintcev, Kleinsteuber, "Compositional Learning of Image-Text Query for Image
Retrieval", WACV 2021; ecom-research/ComposeAE).

    x0 = Lin(avgpool(ResNet-18 layer4(image)))                    raw image feature [B, D]
    t0 = mean of a frozen BERT layer over the text's tokens        raw text feature  [B, H]
    each of the two branches has its own complex projection:
        x = Lin(ReLU(Dropout(Lin(BN(x0)))))                       modulus        [B, D]
        δ = Lin(ReLU(Lin(BN(t0))))                                 phase (text)   [B, D]
        Re = x ⊙ cos δ,  Im = c · x ⊙ sin δ                       c = 1; c = -1: the conjugate
    linear  ρ(z)      = Lin(ReLU(Lin(ReLU(BN([Re, Im])))))          [B, 2D] -> [B, D]
    conv    ρ_conv(z) = same MLP on flatten(MaxPool(Conv1d([x, δ, x0, Re, Im])))  (5 channels of D)
    θ = a_lin · ρ + a_conv · ρ_conv                                a learnable, initially (10, 1)
    image decoder  x̂0 = Lin(ReLU(Lin(ReLU(BN(θ)))))                [B, D]
    text decoder   t̂0 = Lin(ReLU(Lin(ReLU(BN(θ)))))                [B, H]
    query = θ, target = x0 of the target image

Loss = base(s·l2n(θ), s·l2n(x0_target)) + 0.1 MSE(x̂0, x0) + 0.1 MSE(t̂0, t0)
       + 0.01 base(s·l2n(θ*), s·l2n(x0)), θ* the composition of the target's x0 with the conjugate
       (c = -1): the rotational symmetry term (target rotated back by the text ≈ the reference).
s is the learnable normalisation scale (initially 4); base is the batch-based classification (each
query's cross-entropy over the batch's targets, the published runs) or the soft triplet. Retrieval
ranks by the dot product of the L2-normalised query and target.

The reference builds c as a constant [32, 1] tensor sliced to the batch (so batches over 32 fail);
here it is a scalar, any batch size works.
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
from coir.pipeline.models.components.cnn import PooledLinearEncoder
from coir.pipeline.models.composeae.config import LOSSES, ComposeAEModelConfig
from coir.pipeline.models.composeae.text import ComposeAEProcessor, FrozenBert


def mlp(dim_in: int, dim_hidden: int, dim_out: int) -> nn.Sequential:
    """BN -> ReLU -> Lin -> ReLU -> Lin: the reference's mappings and decoders."""
    return nn.Sequential(
        nn.BatchNorm1d(dim_in),
        nn.ReLU(),
        nn.Linear(dim_in, dim_hidden),
        nn.ReLU(),
        nn.Linear(dim_hidden, dim_out),
    )


class ComplexProjection(nn.Module):
    """(x0 [B, D], t0 [B, H], conjugate) -> (x, δ, Re, Im), each [B, D]."""

    def __init__(self, dim: int, text_dim: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.image = nn.Sequential(
            nn.BatchNorm1d(dim), nn.Linear(dim, dim), nn.Dropout(dropout), nn.ReLU(), nn.Linear(dim, dim)
        )
        self.text = nn.Sequential(
            nn.BatchNorm1d(text_dim), nn.Linear(text_dim, dim), nn.ReLU(), nn.Linear(dim, dim)
        )

    def forward(
        self, image: torch.Tensor, text: torch.Tensor, conjugate: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x, delta = self.image(image), self.text(text)
        sin = -torch.sin(delta) if conjugate else torch.sin(delta)
        return x, delta, x * torch.cos(delta), x * sin


class ConvMapping(nn.Module):
    """[x, δ, x0, Re, Im] as 5 channels of length D -> Conv1d(k 3) -> AdaptiveMaxPool1d -> the MLP."""

    def __init__(self, dim: int, channels: int = 64, pooled: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv1d(5, channels, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveMaxPool1d(pooled)
        self.mapping = mlp(channels * pooled, dim, dim)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        pooled = self.pool(self.conv(torch.stack(parts, dim=1)))
        return self.mapping(pooled.flatten(1))


class Composer(nn.Module):
    """θ from the raw image and text features: two branches, each with its own complex projection."""

    def __init__(self, cfg: ComposeAEModelConfig, text_dim: int) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.project_linear = ComplexProjection(dim, text_dim, cfg.image_dropout)
        self.project_conv = ComplexProjection(dim, text_dim, cfg.image_dropout)
        self.linear = mlp(2 * dim, dim, dim)
        self.conv = ConvMapping(dim, cfg.conv_channels, cfg.conv_pool)
        # the reference's a = (conv weight, linear weight, unused, unused)
        self.a = nn.Parameter(torch.tensor([float(cfg.linear_weight), float(cfg.conv_weight)]))

    def forward(self, image: torch.Tensor, text: torch.Tensor, conjugate: bool = False) -> torch.Tensor:
        _, _, re, im = self.project_linear(image, text, conjugate)
        theta_linear = self.linear(torch.cat([re, im], dim=1))
        x, delta, re, im = self.project_conv(image, text, conjugate)
        theta_conv = self.conv([x, delta, image, re, im])
        return self.a[0] * theta_linear + self.a[1] * theta_conv


class ComposeAE(RetrievalModel):
    family = "composeae"
    name = "composeae"

    def __init__(
        self, cfg: ComposeAEModelConfig, bert: nn.Module, tokenizer: Any, load_weights: bool = True
    ) -> None:
        """bert, tokenizer: the loaded text model; load_weights: read cfg.backbone_weights (False when
        the weights come from an export right after)."""
        super().__init__()
        if cfg.loss not in LOSSES:
            raise ConfigError(f"key 'model.loss': must be one of {', '.join(LOSSES)}, got {cfg.loss!r}")
        if cfg.max_length < 2:
            raise ConfigError(
                f"key 'model.max_length': must hold [CLS] and [SEP] (>= 2), got {cfg.max_length}"
            )
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.image_encoder = PooledLinearEncoder(
            cfg.backbone, cfg.backbone_weights if load_weights else None, cfg.embed_dim
        )
        self.text_encoder = FrozenBert(bert, cfg.text_layer)
        text_dim = self.text_encoder.dim
        self.composer = Composer(cfg, text_dim)
        self.image_decoder = mlp(cfg.embed_dim, cfg.embed_dim, cfg.embed_dim)
        self.text_decoder = mlp(cfg.embed_dim, text_dim, text_dim)
        # shape [1]: DeepSpeed's fp32 gradient clipping scales gradients in place by a [1] factor
        scale = torch.full((1,), float(cfg.normalize_scale))
        if cfg.learnable_scale:
            self.norm_scale = nn.Parameter(scale)
        else:
            self.register_buffer("norm_scale", scale, persistent=False)

    # ---- encoders ------------------------------------------------------------------------------
    def text_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.text_encoder(batch["input_ids"], batch["attention_mask"])

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        theta = self.composer(self.image_encoder(batch["query_image"]), self.text_features(batch))
        return F.normalize(theta, dim=-1)

    def encode_target(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_encoder(images), dim=-1)

    def scale(self) -> torch.Tensor:
        """The normalisation layer's scale s (a scalar)."""
        return self.norm_scale.squeeze(0)

    # ---- objective -----------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        source = self.image_encoder(batch["query_image"])
        target = self.image_encoder(batch["target_image"])
        text = self.text_features(batch)
        theta = self.composer(source, text)
        base = self.objective(F.normalize(theta, dim=-1), F.normalize(target, dim=-1))
        image_rec = F.mse_loss(self.image_decoder(theta).float(), source.float())
        text_rec = F.mse_loss(self.text_decoder(theta).float(), text.float())
        rotated_back = self.composer(target, text, conjugate=True)
        symmetry = self.objective(F.normalize(rotated_back, dim=-1), F.normalize(source, dim=-1))
        total = (
            base
            + cfg.image_reconstruction_weight * image_rec
            + cfg.text_reconstruction_weight * text_rec
            + cfg.symmetry_weight * symmetry
        )
        return {
            "loss": total,
            "base": base.detach(),
            "image_reconstruction": image_rec.detach(),
            "text_reconstruction": text_rec.detach(),
            "symmetry": symmetry.detach(),
            "scale": self.scale().detach(),
        }

    def objective(self, queries: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The base loss on s * queries and s * targets (L2-normalised [B, D], row i a pair), targets
        gathered from every rank; soft_triplet: mean of log(1 + exp(d(q, t+) - d(q, t-))) over every
        other target t- (squared Euclidean d)."""
        scale = self.scale()
        queries, targets = scale * queries, scale * targets
        all_targets, offset = gather_with_grad(targets)
        if self.cfg.loss == "batch_classification":
            return batch_cross_entropy(queries @ all_targets.T, offset)
        rows = torch.arange(queries.shape[0], device=queries.device) + offset
        distances = torch.cdist(queries.float(), all_targets.float()).square()
        terms = F.softplus(distances.gather(1, rows[:, None]) - distances)
        negative = torch.ones_like(terms, dtype=torch.bool)
        negative[torch.arange(len(rows)), rows] = False
        return terms[negative].mean()

    def processor(self) -> ComposeAEProcessor:
        cfg = self.cfg
        return ComposeAEProcessor(self.tokenizer, cfg.max_length, cfg.image_size, cfg.resize)

    def export_config(self) -> dict[str, Any]:
        model = dataclasses.asdict(self.cfg)
        # the weights (BERT's too) and the tokenizer travel in the export
        model.update(text_model=None, backbone_weights=None, init_from=None)
        return {"model": model}

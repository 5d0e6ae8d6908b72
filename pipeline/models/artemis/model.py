"""ARTEMIS: Explicit Matching + Implicit Similarity between a (reference, text) query and a target.

    r, t = l2n(Lin(GeM(ResNet-layer4(image))))        reference and target embeddings [*, D]
    m    = text encoder (BiGRU / LSTM) over word ids    modification text embedding [B, D]
    A(m) = softmax(Lin(ReLU(Lin(m))))                   one attention over the D features (EM, IS)
    EM   = < l2n(Lin(m)), l2n(A_EM(m) * t) >            does the target show what the text asks for
    IS   = < l2n(A_IS(m) * r), l2n(A_IS(m) * t) >       does it keep what the text leaves alone
    score = EM + IS;  loss = cross-entropy over the batch score matrix x exp(tau)

The score is joint (it depends on the query's text and the candidate together), so the query state
keeps the text's attentions beside the reference. Both terms expand into matrix products
(|a * t|^2 = (a^2) . (t^2)), so a [q, g] block never needs the [q, g, D] tensor the reference
broadcasts; `score_broadcast` is that reference form, kept for the tests.
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
from coir.pipeline.models.artemis.config import ArtemisModelConfig
from coir.pipeline.models.base import RetrievalModel
from coir.pipeline.models.components.cnn import GeM, build_resnet
from coir.pipeline.models.components.glove import word_embedding
from coir.pipeline.models.components.processor import WordProcessor
from coir.pipeline.models.components.text import BiGRUEncoder, LSTMEncoder
from coir.pipeline.models.frozen import FrozenPart, frozen_identity, weights_sha256

EPS = 1e-12  # F.normalize's floor on a norm


class FeatureAttention(nn.Module):
    """A(m) = softmax over the D features of Lin(ReLU(Lin(m)))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.layers(text).softmax(dim=-1)


class ImageEncoder(nn.Module):
    """ResNet layer-4 map -> GeM (p = 3) or average pooling -> linear to D -> L2 norm.

    `features` (CNN + pooling) is the frozen part when the backbone is frozen; `head` (linear + L2
    norm) always trains."""

    def __init__(self, backbone: str, weights: str | None, embed_dim: int, pooling: str = "gem") -> None:
        super().__init__()
        self.cnn = build_resnet(backbone, weights)
        if pooling not in ("gem", "avg"):
            raise ConfigError(f"key 'model.pooling': must be gem or avg, got {pooling!r}")
        self.pool = GeM(p=3.0) if pooling == "gem" else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(self.cnn.channels["layer4"], embed_dim)

    @property
    def frozen(self) -> bool:
        return not any(p.requires_grad for p in self.cnn.parameters())

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> pooled layer-4 features [B, C]."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.pool(self.cnn(images)["layer4"])

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features [B, C] (any float dtype: stored features may be float16) -> [B, D]."""
        return F.normalize(self.fc(features.to(self.fc.weight.dtype)), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class FrozenFeatures(nn.Module):
    """The frozen part of a frozen-backbone ImageEncoder: its `features`, without gradients (the
    encoder is shared, not copied)."""

    def __init__(self, encoder: ImageEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.encoder.features(images)


def text_encoder(cfg: ArtemisModelConfig, vocab: Vocabulary, load_glove: bool) -> nn.Module:
    embedding, _ = word_embedding(vocab.words, cfg.word_dim, cfg.glove if load_glove else None)
    if cfg.text_encoder == "bigru":
        return BiGRUEncoder(embedding, cfg.embed_dim)
    if cfg.text_encoder == "lstm":
        return LSTMEncoder(embedding, cfg.embed_dim, hidden_dim=cfg.lstm_hidden)
    raise ConfigError(f"key 'model.text_encoder': must be bigru or lstm, got {cfg.text_encoder!r}")


class Artemis(RetrievalModel):
    family = "artemis"
    name = "artemis"
    # four [q, g] float32 products and their quotients live at once while scoring a block
    score_bytes_per_pair = 24

    def __init__(self, cfg: ArtemisModelConfig, vocab: Vocabulary, load_weights: bool = True) -> None:
        """load_weights: read the GloVe and backbone files named in cfg (False when the weights
        come from an export or another model right after)."""
        super().__init__()
        self.cfg = cfg
        self.vocab = vocab
        self.image_encoder = ImageEncoder(
            cfg.backbone, cfg.backbone_weights if load_weights else None, cfg.embed_dim, cfg.pooling
        )
        self.text_encoder = text_encoder(cfg, vocab, load_weights)
        self.transform_text = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.attention_em = FeatureAttention(cfg.embed_dim)
        self.attention_is = FeatureAttention(cfg.embed_dim)
        # shape [1]: DeepSpeed's fp32 gradient clipping scales gradients in place by a [1] factor
        temperature = torch.full((1,), float(cfg.temperature))
        if cfg.learnable_temperature:
            self.temp = nn.Parameter(temperature)
        else:
            self.register_buffer("temp", temperature, persistent=False)
        self.configure()

    def configure(self) -> None:
        """Freezing for stage 1 of the two-stage recipe (the recurrent encoder and heads train)."""
        self.image_encoder.cnn.requires_grad_(not self.cfg.freeze_backbone)
        self.text_encoder.embedding.requires_grad_(not self.cfg.freeze_word_embeddings)
        self.train(self.training)

    def train(self, mode: bool = True) -> Artemis:
        """A frozen backbone is a fixed feature extractor: its BatchNorm layers keep their running
        statistics (eval mode) in training too, so an image's feature does not depend on its batch,
        on how the batch is split over ranks, or on whether it was computed once and cached. (The
        reference only stops the gradients: its frozen CNN still normalises with batch statistics.)"""
        super().train(mode)
        if self.cfg.freeze_backbone:
            self.image_encoder.cnn.eval()
        return self

    # ---- encoders ------------------------------------------------------------------------------
    def frozen_image_features(self) -> FrozenPart | None:
        """With a frozen backbone: the CNN + pooling (its BatchNorm in eval mode, see train())."""
        if not self.cfg.freeze_backbone:
            return None
        cfg = self.cfg
        identity = frozen_identity(
            f"torchvision {cfg.backbone} layer4, {cfg.pooling} pooling",
            weights_sha256(self.image_encoder.cnn, self.image_encoder.pool),
            self.processor().image_settings(),
        )
        return FrozenPart(FrozenFeatures(self.image_encoder), identity)

    def encode_target(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(images)

    def encode_target_features(self, features: torch.Tensor) -> torch.Tensor:
        if not self.cfg.freeze_backbone:
            raise ConfigError("model.freeze_backbone is false: this ARTEMIS model takes images, not features")
        return self.image_encoder.head(features)

    def _images_of(self, batch: dict[str, torch.Tensor], role: str) -> torch.Tensor:
        """The embeddings of the batch's `role` (query / target) images or frozen features."""
        if f"{role}_feature" in batch:
            return self.encode_target_features(batch[f"{role}_feature"])
        return self.encode_target(batch[f"{role}_image"])

    def encode_text(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.text_encoder(batch["input_ids"], batch["lengths"])

    def query_state(self, reference: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """What scoring needs of a query, each [B, D]: EM's weights Lin(m)-normalised x A_EM(m), A_EM^2;
        IS's weights A_IS^2 x r / |A_IS x r|, A_IS^2."""
        a_em, a_is = self.attention_em(text), self.attention_is(text)
        em_text = F.normalize(self.transform_text(text), dim=-1)
        is_norm = (a_is * reference).norm(dim=-1, keepdim=True).clamp_min(EPS)
        return {
            "em_weight": em_text * a_em,
            "em_attention_sq": a_em.square(),
            "is_weight": a_is.square() * reference / is_norm,
            "is_attention_sq": a_is.square(),
        }

    def encode_query(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.query_state(self._images_of(batch, "query"), self.encode_text(batch))

    # ---- scoring -------------------------------------------------------------------------------
    def score(self, query_state: dict[str, torch.Tensor], gallery_state: torch.Tensor) -> torch.Tensor:
        """EM + IS of every query against every candidate [q, g], as matrix products."""
        t, t_sq = gallery_state, gallery_state.square()
        em = query_state["em_weight"] @ t.T / (query_state["em_attention_sq"] @ t_sq.T).sqrt().clamp_min(EPS)
        is_ = query_state["is_weight"] @ t.T / (query_state["is_attention_sq"] @ t_sq.T).sqrt().clamp_min(EPS)
        return em + is_

    def score_broadcast(
        self, reference: torch.Tensor, text: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The reference implementation's form: A(m) applied to every target, [q, g, D] in memory."""
        a_em, a_is = self.attention_em(text)[:, None], self.attention_is(text)[:, None]
        em_text = F.normalize(self.transform_text(text), dim=-1)[:, None]
        em = (em_text * F.normalize(a_em * targets[None], dim=-1)).sum(-1)
        is_reference = F.normalize(a_is * reference[:, None], dim=-1)
        is_ = (is_reference * F.normalize(a_is * targets[None], dim=-1)).sum(-1)
        return em + is_

    # ---- objective -----------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Cross-entropy of each query over the batch's targets (gathered from every rank)."""
        if "query_feature" in batch:  # frozen features (coir data features shards)
            reference, target = (self._images_of(batch, role) for role in ("query", "target"))
        else:  # one pass over both: BatchNorm of a training backbone sees the whole batch
            n = batch["query_image"].shape[0]
            images = self.encode_target(torch.cat([batch["query_image"], batch["target_image"]]))
            reference, target = images[:n], images[n:]
        state = self.query_state(reference, self.encode_text(batch))
        targets, offset = gather_with_grad(target)
        scale = self.temp.exp().squeeze(0)
        loss = batch_cross_entropy(self.score(state, targets) * scale, offset)
        return {"loss": loss, "scale": scale.detach()}

    # ---- interface -----------------------------------------------------------------------------
    def processor(self) -> WordProcessor:
        cfg = self.cfg
        return WordProcessor(self.vocab, cfg.max_length, cfg.image_size, cfg.resize)

    def export_config(self) -> dict[str, Any]:
        model = dataclasses.asdict(self.cfg)
        # the weights travel in the export: nothing is read from these paths again
        model.update(vocabulary=None, glove=None, backbone_weights=None, init_from=None)
        return {"model": model}

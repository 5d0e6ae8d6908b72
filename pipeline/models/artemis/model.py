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

import torch
import torch.nn.functional as F
from torch import nn

from coir.common.errors import ConfigError
from coir.datasets.vocab import Vocabulary
from coir.pipeline.losses import batch_cross_entropy, gather_with_grad
from coir.pipeline.models.artemis.config import ArtemisModelConfig
from coir.pipeline.models.components.cnn import GeM, build_resnet
from coir.pipeline.models.components.em_is import EM_IS_BYTES_PER_PAIR, em_is_query_state, em_is_score
from coir.pipeline.models.components.word_model import WordRetrievalModel
from coir.pipeline.models.frozen import FrozenPart, frozen_identity, weights_sha256


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


class Artemis(WordRetrievalModel):
    family = "artemis"
    name = "artemis"
    score_bytes_per_pair = EM_IS_BYTES_PER_PAIR

    def __init__(self, cfg: ArtemisModelConfig, vocab: Vocabulary, load_weights: bool = True) -> None:
        """load_weights: read the GloVe and backbone files named in cfg (False when the weights
        come from an export or another model right after)."""
        weights = cfg.backbone_weights if load_weights else None
        image_encoder = ImageEncoder(cfg.backbone, weights, cfg.embed_dim, cfg.pooling)
        super().__init__(cfg, vocab, image_encoder, load_weights)
        self.configure()

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

    def query_state(self, reference: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """What scoring needs of a query, each [B, D] (components.em_is.em_is_query_state)."""
        a_em, a_is = self.attention_em(text), self.attention_is(text)
        return em_is_query_state(reference, self.em_text(text), a_em, a_is)

    def encode_query(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.query_state(self._images_of(batch, "query"), self.encode_text(batch))

    # ---- scoring -------------------------------------------------------------------------------
    def score(self, query_state: dict[str, torch.Tensor], gallery_state: torch.Tensor) -> torch.Tensor:
        """EM + IS of every query against every candidate [q, g], as matrix products."""
        return em_is_score(query_state, gallery_state)

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
        scale = self.scale()
        loss = batch_cross_entropy(self.score(state, targets) * scale, offset)
        return {"loss": loss, "scale": scale.detach()}

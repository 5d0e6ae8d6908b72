"""CRN: Cross Relation Network with Hierarchical Aggregation Transformer (Yang et al., IEEE TIP 2023;
yan9qu/crn).

Two networks ("branches"), each with its own Swin image encoder (backbone.py), word LSTM, cross
relation (cross_relation.py), GeM head and learnable scale s (initially 10):

    local   q_L = Lin(GeM(γ ⊙ M' + β))           region-to-text relation on the query image's map M'
    global  q_G = Lin(GeM_words(γ ⊙ v + β))      text-to-region relation
    targets t_L, t_G = the image embeddings e' of each branch's own encoder

Losses of one step (the other branch always detached, sg = stop-gradient):
    class_X      cross-entropy of s_X · cos(q_X, t_X) over the (gathered) batch's targets
    perceptual   MSE(γ ⊙ M'_query + β, M'_target), local branch only (as the reference)
    image_X      MSE(t_X, sg t_Y) + MSE(q_X, sg q_Y)                     (image consistency)
    mutual_X     KL(softmax(10 · cos(sg q_Y, sg t_Y)) ‖ softmax(10 · cos(q_X, t_X))), batch mean
    loss = class_w (class_L + class_G) + perceptual_w perceptual + image_w (image_L + image_G)
           + mutual_w (mutual_L + mutual_G)

How this relates to the reference's training: yan9qu/crn keeps the two networks as separate models
with an Adam optimizer each and, per batch, first steps the local network on its loss (global
outputs detached), then recomputes the global outputs and steps the global network on its loss
against the just-updated local network (detached). Here both branches live in one coir model and
one optimizer step: every term of branch X sees branch Y only through sg, so the gradient of `loss`
with respect to X's parameters is exactly the gradient of X's own reference loss, and AdamW's update
is per parameter, so one step equals the two reference steps except that the global branch's terms
use the local branch's outputs from before that step's update instead of after (a simultaneous
rather than alternating update). Both branches share the optimizer's settings (as the reference's
two optimizers do), and a gradient-norm clip, when set, is taken over both branches together.

Retrieval (the reference's test.py): query = [l2n(q_L), l2n(q_G)] / √2, target = [l2n(t_L), l2n(t_G)]
/ √2, both unit vectors; the score is their dot product, the mean of the two branches' cosines.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coir.common.errors import ConfigError
from coir.datasets.vocab import Vocabulary
from coir.pipeline.losses import batch_cross_entropy, gather_with_grad
from coir.pipeline.models.base import RetrievalModel
from coir.pipeline.models.components.processor import WordProcessor
from coir.pipeline.models.crn.backbone import ImageEncoder, build_swin, load_swin_weights
from coir.pipeline.models.crn.config import AGGREGATIONS, REGIONS, CrnModelConfig
from coir.pipeline.models.crn.cross_relation import (
    GeM,
    GlobalRelation,
    LocalRelation,
    WordLSTM,
    masked_gem,
    word_mask,
)

BRANCHES = ("local", "global")


class Branch(nn.Module):
    """One of the reference's two networks (compose_local / compose_global)."""

    def __init__(self, kind: str, cfg: CrnModelConfig, vocab_size: int, load_weights: bool) -> None:
        super().__init__()
        self.kind = kind
        swin = build_swin(cfg.backbone, cfg.image_size, cfg.backbone_args)
        if load_weights and cfg.backbone_weights:
            load_swin_weights(swin, cfg.backbone_weights)
        self.image = ImageEncoder(
            swin, cfg.map_dim, cfg.embed_dim, cfg.aggregation, cfg.aggregation_stages, cfg.regions, cfg.gem_p
        )
        self.text = WordLSTM(vocab_size, cfg.word_dim, cfg.lstm_hidden)
        if kind == "local":
            self.relation: nn.Module = LocalRelation(cfg.map_dim, cfg.lstm_hidden, cfg.local_temperature)
            self.head = nn.Linear(cfg.map_dim, cfg.embed_dim)
        else:
            self.relation = GlobalRelation(cfg.map_dim, cfg.lstm_hidden, cfg.global_temperature)
            self.head = nn.Linear(cfg.lstm_hidden, cfg.embed_dim)
        self.pool = GeM(cfg.gem_p)
        # shape [1]: DeepSpeed's fp32 gradient clipping scales gradients in place by a [1] factor
        self.scale = nn.Parameter(torch.full((1,), float(cfg.normalize_scale)))

    def relate(
        self, images: torch.Tensor, input_ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The relation's modulated output (local [B, C, h, w], global [B, d, L]), γ and β."""
        regions, _ = self.image(images)
        words = self.text(input_ids, lengths)
        return self.relation(regions, words, word_mask(lengths, words.shape[1]))

    def compose(
        self, images: torch.Tensor, input_ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(query embedding [B, embed_dim], the relation's modulated output)."""
        out, _, _ = self.relate(images, input_ids, lengths)
        if self.kind == "local":
            return self.head(self.pool(out)), out
        mask = word_mask(lengths, out.shape[-1])
        return self.head(masked_gem(out, mask, self.pool.p)), out


def mutual_kl(own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """KL(softmax(other) ‖ softmax(own)) averaged over rows; other is a constant (detached)."""
    return F.kl_div(F.log_softmax(own, dim=1), F.softmax(other.detach(), dim=1), reduction="batchmean")


class Crn(RetrievalModel):
    family = "crn"
    name = "crn"

    def __init__(self, cfg: CrnModelConfig, vocab: Vocabulary, load_weights: bool = True) -> None:
        """load_weights: read the Swin file named in cfg (False when the weights come from an export
        or another model right after)."""
        super().__init__()
        if cfg.aggregation not in AGGREGATIONS:
            raise ConfigError(
                f"key 'model.aggregation': must be one of {', '.join(AGGREGATIONS)}, got {cfg.aggregation!r}"
            )
        if cfg.regions not in REGIONS:
            raise ConfigError(
                f"key 'model.regions': must be one of {', '.join(REGIONS)}, got {cfg.regions!r}"
            )
        if cfg.freeze_backbone or cfg.freeze_word_embeddings:
            raise ConfigError("key 'model.freeze_backbone': CRN trains every part (no two-stage recipe)")
        if vocab.tokenizer != "tirg":
            raise ConfigError(
                "key 'model.vocabulary': CRN needs a vocabulary of the TIRG-style tokenizer its reference "
                f"uses (coir data vocab --tokenizer tirg), got a {vocab.tokenizer} one"
            )
        self.cfg = cfg
        self.vocab = vocab
        self.branches = nn.ModuleDict({k: Branch(k, cfg, len(vocab), load_weights) for k in BRANCHES})

    # ---- encoders ------------------------------------------------------------------------------
    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [
            F.normalize(b.compose(batch["query_image"], batch["input_ids"], batch["lengths"])[0], dim=-1)
            for b in self.branches.values()
        ]
        return torch.cat(parts, dim=-1) / math.sqrt(len(parts))

    def encode_target(self, images: torch.Tensor) -> torch.Tensor:
        parts = [F.normalize(b.image(images)[1], dim=-1) for b in self.branches.values()]
        return torch.cat(parts, dim=-1) / math.sqrt(len(parts))

    # ---- objective -----------------------------------------------------------------------------
    def terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every loss term, unweighted (see the module docstring)."""
        ids, lengths = batch["input_ids"], batch["lengths"]
        query, target, query_out, target_map, scale = {}, {}, {}, {}, {}
        for kind, branch in self.branches.items():
            query[kind], query_out[kind] = branch.compose(batch["query_image"], ids, lengths)
            target_map[kind], target[kind] = branch.image(batch["target_image"])
            scale[kind] = branch.scale.squeeze(0)
        cosines = {}
        terms: dict[str, torch.Tensor] = {}
        for kind in BRANCHES:
            targets, offset = gather_with_grad(F.normalize(target[kind], dim=-1))
            cosines[kind] = F.normalize(query[kind], dim=-1) @ targets.T
            terms[f"class_{kind}"] = batch_cross_entropy(scale[kind] * cosines[kind], offset)
        terms["perceptual"] = F.mse_loss(query_out["local"], target_map["local"])
        logit = self.cfg.mutual_logit_scale
        for kind, other in (("local", "global"), ("global", "local")):
            terms[f"image_{kind}"] = F.mse_loss(target[kind], target[other].detach()) + F.mse_loss(
                query[kind], query[other].detach()
            )
            terms[f"mutual_{kind}"] = mutual_kl(logit * cosines[kind], logit * cosines[other])
        return terms

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        terms = self.terms(batch)
        weights = {
            "class": cfg.class_weight,
            "perceptual": cfg.perceptual_weight,
            "image": cfg.image_weight,
            "mutual": cfg.mutual_weight,
        }
        total = sum(
            (
                weights[name.split("_")[0]] * value
                for name, value in terms.items()
                if weights[name.split("_")[0]]
            ),
            torch.zeros((), device=terms["perceptual"].device),
        )
        out = {"loss": total} | {k: v.detach() for k, v in terms.items()}
        return out | {f"scale_{k}": b.scale.detach().squeeze(0) for k, b in self.branches.items()}

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

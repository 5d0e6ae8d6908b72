"""EM + IS at three image levels with one set of heads (CMAP, MANME).

The attention modules A_EM, A_IS and the text transform Tr are shared by the levels (Code_CMAP
cmap.py, MANME MANME_modle.py: one Attention_EM / Attention_IS / Transform_m). Per level l:

    s_l(q, t) = EM(m_l, t_l) + IS(m_l, r_l, t_l)         (components.em_is)
    training:  sum_l CE(exp(tau) s_l over the batch)   +  the family's auxiliary terms
    test:      score = sum_l s_l                         (the references' evaluate.py: cs + cs_14 + cs_28)

m_l is the text embedding, the same at every level unless the family makes it depend on the level
(MANME's multi-grained attention). States: query {level: EM / IS weights}, gallery {level: [N, D]}.
The multi-level backbone's outputs are maps, so no frozen part is offered for feature shards
(`freeze_backbone` still freezes the CNN and keeps its BatchNorm statistics).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from coir.datasets.vocab import Vocabulary
from coir.pipeline.losses import batch_cross_entropy, dist_info, gather_with_grad
from coir.pipeline.models.components.em_is import EM_IS_BYTES_PER_PAIR, em_is_query_state, em_is_score
from coir.pipeline.models.components.levels import LEVELS, MultiLevelImageEncoder
from coir.pipeline.models.components.word_model import WordModelConfig, WordRetrievalModel

Levels = dict[str, torch.Tensor]  # {level: tensor}
State = dict[str, Levels]


@dataclass(frozen=True)
class LevelPairs:
    """One level of a batch's matching pairs (row i: query i and its own target), each [B, D]: what
    the auxiliary losses on positive pairs read."""

    text: torch.Tensor  # m (the level's text embedding, unit norm)
    em_text: torch.Tensor  # Tr(m) = l2n(Lin(m))
    a_em: torch.Tensor  # A_EM(m)
    a_is: torch.Tensor  # A_IS(m)
    target: torch.Tensor  # t at this level (unit norm)


def global_batch_sum(cost: torch.Tensor) -> torch.Tensor:
    """sum over this rank's rows x world size: DDP / DeepSpeed average gradients over ranks, so the
    trained objective is the sum over the global batch, as one process on the whole batch."""
    return cost.sum() * dist_info()[1]


class MultiLevelEMIS(WordRetrievalModel):
    # one level's em_is_score blocks at a time, plus the running [q, g] sum
    score_bytes_per_pair = EM_IS_BYTES_PER_PAIR + 4

    def __init__(
        self,
        cfg: WordModelConfig,
        vocab: Vocabulary,
        interaction: torch.nn.Module | None = None,
        load_weights: bool = True,
    ) -> None:
        weights = cfg.backbone_weights if load_weights else None
        encoder = MultiLevelImageEncoder(cfg.backbone, weights, cfg.embed_dim, interaction)
        super().__init__(cfg, vocab, encoder, load_weights)

    # ---- family hooks --------------------------------------------------------------------------
    def level_texts(self, text: torch.Tensor, reference_maps: Levels) -> Levels:
        """m_l for each level: the text embedding itself (the references' released scoring)."""
        return dict.fromkeys(LEVELS, text)

    def auxiliary_losses(self, pairs: dict[str, LevelPairs]) -> dict[str, torch.Tensor]:
        """Weighted terms added to the cross-entropies (named for the logs); none by default."""
        return {}

    # ---- encoders ------------------------------------------------------------------------------
    def encode_target(self, images: torch.Tensor) -> Levels:
        return self.image_encoder(images)

    def _heads(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.em_text(text), self.attention_em(text), self.attention_is(text)

    def encode_query(self, batch: dict[str, torch.Tensor]) -> State:
        maps = self.image_encoder.maps(batch["query_image"])
        reference = self.image_encoder.embed(maps)
        texts = self.level_texts(self.encode_text(batch), maps)
        return {level: em_is_query_state(reference[level], *self._heads(texts[level])) for level in LEVELS}

    # ---- scoring -------------------------------------------------------------------------------
    def score(self, query_state: State, gallery_state: Levels) -> torch.Tensor:
        """The sum over the levels of EM + IS, [q, g]."""
        total = em_is_score(query_state[LEVELS[0]], gallery_state[LEVELS[0]])
        for level in LEVELS[1:]:
            total += em_is_score(query_state[level], gallery_state[level])
        return total

    # ---- objective -----------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per level, the cross-entropy of each query over the batch's targets (gathered from every
        rank), summed over the levels; plus the family's auxiliary terms on the matching pairs."""
        n = batch["query_image"].shape[0]
        # one pass over both: BatchNorm of a training backbone sees the whole batch
        maps = self.image_encoder.maps(torch.cat([batch["query_image"], batch["target_image"]]))
        images = self.image_encoder.embed(maps)
        texts = self.level_texts(self.encode_text(batch), {level: m[:n] for level, m in maps.items()})
        scale = self.scale()
        terms: dict[str, torch.Tensor] = {}
        pairs: dict[str, LevelPairs] = {}
        for level in LEVELS:
            reference, target = images[level][:n], images[level][n:]
            em_text, a_em, a_is = self._heads(texts[level])
            state = em_is_query_state(reference, em_text, a_em, a_is)
            targets, offset = gather_with_grad(target)
            terms[f"ce_{level}"] = batch_cross_entropy(em_is_score(state, targets) * scale, offset)
            pairs[level] = LevelPairs(texts[level], em_text, a_em, a_is, target)
        terms |= self.auxiliary_losses(pairs)
        loss = torch.stack(list(terms.values())).sum()
        return {"loss": loss, "scale": scale.detach(), **{k: v.detach() for k, v in terms.items()}}

"""Pic2Word: a frozen CLIP and a mapping network that turns the reference image into a pseudo word.

    v      = CLIP image embedding of an image (raw, unnormalised), frozen
    w      = mapping(v)                     one token embedding of CLIP's text tower (mapping.py)
    text   = CLIP text tower over the prompt's token embeddings, w in place of the pseudo word's
    training (images only; src/trainer.py get_loss_img2text): text of "a photo of *" against l2n(v),
             logits = s * l2n(v) . l2n(text), s = exp(CLIP's logit_scale) (frozen: 100 for OpenAI's),
             loss = (CE image->text + CE text->image) / 2 over the batch (gathered from every rank)
    query  = l2n(text) of the benchmark's prompt with the caption, e.g. "a photo of * , {caption}"
    target = l2n(CLIP image embedding)

Only the mapping trains; CLIP stays in eval mode without gradients, so its image tower is a frozen part
whose features evaluation caches. The reference inserts w before the end token of "a photo of" in
training and overwrites the "*" token at test time; both are the same sequence, which is what coir builds
in both cases. The image-only and text-only baselines (the reference's 'image' and 'text' features) are
models of the family on the same CLIP: the reference image's embedding, and the caption alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coir.common.errors import ConfigError
from coir.pipeline.losses import batch_cross_entropy, gather_with_grad
from coir.pipeline.models.base import RetrievalModel, check_prompt
from coir.pipeline.models.components.clip import FrozenImageFeatures
from coir.pipeline.models.frozen import FrozenPart, frozen_identity, weights_sha256
from coir.pipeline.models.pic2word.config import IMAGE_TRANSFORMS, Pic2WordModelConfig
from coir.pipeline.models.pic2word.mapping import PseudoWordMapping
from coir.pipeline.models.pic2word.processor import POSITION, PseudoWordProcessor


@contextmanager
def words_spliced(clip: nn.Module, words: torch.Tensor, positions: torch.Tensor) -> Iterator[None]:
    """Within the block, clip's token embedding gives words[i] at positions[i] of row i (so
    clip.encode_text runs open_clip's own text path with the pseudo words in place)."""

    def splice(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(output.shape[0], device=output.device)
        return output.index_put((rows, positions.to(output.device)), words.to(output.dtype))

    handle = clip.token_embedding.register_forward_hook(splice)
    try:
        yield
    finally:
        handle.remove()


class Pic2Word(RetrievalModel):
    family = "pic2word"
    name = "pic2word"
    #: trains on single images (gallery-format shards), not on triplets
    training_samples = "images"

    def __init__(
        self,
        cfg: Pic2WordModelConfig,
        clip: nn.Module,
        clip_config: dict[str, Any],
        mapping: PseudoWordMapping | None = None,
    ) -> None:
        """clip: an open_clip CLIP built from clip_config (the full architecture, kept for exports);
        mapping: the one to use (a baseline shares its model's), else a new one with random weights."""
        super().__init__()
        check_config(cfg)
        if not hasattr(clip, "token_embedding"):
            raise ConfigError(
                "key 'model.clip_config': Pic2Word puts its pseudo word into open_clip's own text "
                "transformer; towers with custom_text (Hugging Face text models) are not supported"
            )
        self.cfg = cfg
        self.clip_config = clip_config
        self.clip = clip.requires_grad_(False)
        self.mapping = mapping or PseudoWordMapping(
            int(clip_config["embed_dim"]),
            cfg.hidden_dim,
            int(clip.token_embedding.embedding_dim),
            cfg.layers,
            cfg.dropout,
        )
        prompt = Pic2Word.processor(self).text([cfg.train_prompt])
        self.register_buffer("train_ids", prompt["input_ids"], persistent=False)
        self.register_buffer("train_position", prompt[POSITION], persistent=False)
        self.train(self.training)

    def train(self, mode: bool = True) -> Pic2Word:
        """CLIP stays in eval mode (frozen, as the reference's model.eval()); the mapping follows `mode`."""
        super().train(mode)
        self.clip.eval()
        return self

    # ---- encoders ------------------------------------------------------------------------------
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Raw CLIP image embeddings [B, D] (float32), no gradients."""
        with torch.no_grad():
            return self.clip.encode_image(images).float()

    def _raw_features(self, batch: dict[str, torch.Tensor], role: str) -> torch.Tensor:
        if f"{role}_feature" in batch:
            return batch[f"{role}_feature"].float()
        return self.image_features(batch[f"{role}_image"])

    def composed_text(
        self, image_features: torch.Tensor, input_ids: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """CLIP text embeddings [B, D] (float32) of the prompts, each image's pseudo word in place."""
        words = self.mapping(image_features)
        with words_spliced(self.clip, words, positions):
            return self.clip.encode_text(input_ids).float()

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        image = self._raw_features(batch, "query")
        return F.normalize(self.composed_text(image, batch["input_ids"], batch[POSITION]), dim=-1)

    def encode_target(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_features(images), dim=-1)

    def encode_target_features(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features.float(), dim=-1)

    def frozen_image_features(self) -> FrozenPart:
        identity = frozen_identity(
            "open_clip encode_image, raw features",  # the same computation as CLIP4Cir's frozen tower
            weights_sha256(self.clip.visual),
            self.processor().image_settings(),
        )
        return FrozenPart(FrozenImageFeatures(self.clip), identity)

    def query_prompt(self, benchmark: str | None) -> str | None:
        return self.cfg.prompts.get(benchmark, self.cfg.prompt) if benchmark else self.cfg.prompt

    # ---- objective -----------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """batch["image"] [B, 3, H, W]: the symmetric contrastive loss of the module docstring."""
        image = self.image_features(batch["image"])
        count = image.shape[0]
        ids, positions = self.train_ids.expand(count, -1), self.train_position.expand(count)
        text = F.normalize(self.composed_text(image, ids, positions), dim=-1)
        image = F.normalize(image, dim=-1)
        all_text, offset = gather_with_grad(text)
        all_images, _ = gather_with_grad(image)
        scale = self.clip.logit_scale.float().exp()
        image_to_text = batch_cross_entropy(scale * image @ all_text.T, offset)
        text_to_image = batch_cross_entropy(scale * text @ all_images.T, offset)
        total = (image_to_text + text_to_image) / 2
        return {
            "loss": total,
            "image_to_text": image_to_text.detach(),
            "text_to_image": text_to_image.detach(),
        }

    def processor(self) -> PseudoWordProcessor:
        cfg = self.cfg
        context_length = int(self.clip_config["text_cfg"].get("context_length", 77))
        size = cfg.image_size or clip_image_size(self.clip_config)
        return PseudoWordProcessor(
            size, context_length, cfg.image_transform, cfg.target_ratio, cfg.pseudo_word
        )

    def export_config(self) -> dict[str, Any]:
        model = dataclasses.asdict(self.cfg)
        # the weights travel in the export, the architecture in full: nothing is read or looked up again
        model.update(
            clip_pretrained=None, mapping_pretrained=None, init_from=None, clip_config=self.clip_config
        )
        return {"model": model}


class ImageOnly(Pic2Word):
    """The reference image's CLIP embedding as the query (the reference's 'image' features)."""

    name = "image-only"

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(self._raw_features(batch, "query"), dim=-1)

    def query_prompt(self, benchmark: str | None) -> str | None:
        return None

    def processor(self) -> PseudoWordProcessor:
        return dataclasses.replace(super().processor(), pseudo_word=None)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise ConfigError("key 'model.name': the image-only baseline has nothing to train (train pic2word)")


class TextOnly(ImageOnly):
    """CLIP's text embedding of the caption alone (the reference's 'text' features, `caption_only`)."""

    name = "text-only"

    def encode_query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(self.clip.encode_text(batch["input_ids"]).float(), dim=-1)


MODELS: dict[str, type[Pic2Word]] = {m.name: m for m in (Pic2Word, ImageOnly, TextOnly)}


def clip_image_size(clip_config: dict[str, Any]) -> int:
    size = clip_config["vision_cfg"].get("image_size", 224)
    return int(size if isinstance(size, int) else size[0])


def check_config(cfg: Pic2WordModelConfig) -> None:
    """Value checks, each error naming its key."""
    if cfg.image_transform not in IMAGE_TRANSFORMS:
        raise ConfigError(
            f"key 'model.image_transform': must be one of {', '.join(IMAGE_TRANSFORMS)}, "
            f"got {cfg.image_transform!r}"
        )
    if cfg.layers < 0 or cfg.hidden_dim < 1 or not 0 <= cfg.dropout < 1:
        raise ConfigError(
            "keys 'model.layers' (>= 0), 'model.hidden_dim' (>= 1), 'model.dropout' (in [0, 1)) out of range"
        )
    prompts = {"model.prompt": cfg.prompt} | {f"model.prompts.{k}": v for k, v in cfg.prompts.items()}
    for key, prompt in prompts.items():
        check_prompt(prompt, key)
    for key, prompt in prompts.items() | {("model.train_prompt", cfg.train_prompt)}:
        if cfg.pseudo_word not in prompt.split():
            raise ConfigError(
                f"key {key!r}: {prompt!r} has no pseudo word {cfg.pseudo_word!r} standing alone "
                "(spaces around it)"
            )

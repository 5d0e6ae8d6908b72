"""The interface every retrieval model implements, whatever its family (CASE, ARTEMIS, ...).

Training, checkpoints, export, evaluation and launching only use what is defined here and the
family's spec in `registry`; none of them names a family.

Batches are dicts of tensors built in DataLoader workers by the model's `Processor`. Images travel as
uint8 [B, 3, H, W] (the processor's host part: decode and geometry) and become the model's float
inputs on the device, batched (`Processor.normalize`, applied by `pixels.to_model_inputs`); so the
model sees:

    query_image      float [B, 3, H, W]   the reference image, transformed and normalised
    target_image     float [B, 3, H, W]   (training only)
    image            float [B, 3, H, W]   (training only, in place of all of these, for a model whose
                                          `training_samples` is "images": Pic2Word learns from images alone)
    <text fields>    whatever `Processor.text` returns: BLIP's input_ids + attention_mask,
                     a word-vocabulary model's input_ids + lengths

A model whose image path starts with a frozen, deterministic part (see `frozen`) returns it from
`frozen_image_features()`; it then also takes that part's outputs where it takes images: batches
may carry `query_feature` / `target_feature` [B, ...] in place of `query_image` / `target_image`
(training on `coir data features` shards, evaluation from cached features), and
`encode_target_features(features)` is `encode_target` from features.

A model that needs the query's text in a prompt of its own (Pic2Word: "a photo of * , {caption}", its
pseudo word * standing for the reference image) says so per benchmark with `query_prompt(benchmark)`;
evaluation and search put each caption into it (`prompt_text`) before the processor tokenises it.

`encode_query(batch)` and `encode_target(images)` return a *state*: a tensor or a tree of tensors
with the batch as first dimension (see `state`). Ranking scores chunks of query states against
chunks of gallery states with `score`; the default is the dot product of two [N, D] embeddings
(L2-normalised by the model), and a model that scores a pair jointly overrides it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

import torch
from PIL import Image
from torch import nn

from coir.common.errors import ConfigError
from coir.pipeline.models.frozen import FrozenPart
from coir.pipeline.models.state import State

CAPTION_FIELD = "{caption}"  # where a query prompt takes the query's text


def check_prompt(prompt: str, key: str) -> None:
    """ConfigError naming `key` when `prompt` has no CAPTION_FIELD."""
    if CAPTION_FIELD not in prompt:
        raise ConfigError(
            f"key {key!r}: a query prompt must hold {CAPTION_FIELD} (where the caption goes), got {prompt!r}"
        )


def prompt_text(prompt: str | None, caption: str) -> str:
    """The caption put into the prompt (every CAPTION_FIELD replaced); the caption itself without one."""
    return caption if prompt is None else prompt.replace(CAPTION_FIELD, caption)


class Processor(Protocol):
    """Picklable: turns raw inputs into tensors. `image` and `text` run inside DataLoader workers,
    `normalize` on the device (see coir.pipeline.models.pixels)."""

    image_size: int

    def image(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> uint8 tensor [3, H, W]: the geometry (pad, resize, crop), nothing float."""
        ...

    def passes_through(self, width: int, height: int) -> bool:
        """Whether `image` returns a decoded width x height image unchanged, so a loader may skip it."""
        ...

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] -> the model's float32 inputs, on the images' device (batched)."""
        ...

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """A list of texts -> the model's text fields, each [B, ...] (fixed size, so batches collate)."""
        ...


class RetrievalModel(nn.Module, ABC):
    """A composed-image-retrieval model: (reference image, text) -> target image."""

    #: the family in the model registry (its spec builds, exports and re-imports the model)
    family: ClassVar[str] = ""
    #: the model's name within its family (e.g. case, image-only); written into exports
    name: ClassVar[str] = ""
    #: memory one (query, candidate) pair takes while `score` runs, in bytes, beyond the [q, g]
    #: float32 result; the ranker sizes its chunks from it and the memory budget
    score_bytes_per_pair: ClassVar[int] = 0
    #: what the model trains on: "triplets" (query.jpg, target.jpg, txt) or "images" (gallery-format
    #: shards, one jpg per sample; batches hold `image` only)
    training_samples: ClassVar[str] = "triplets"

    @abstractmethod
    def encode_query(self, batch: dict[str, torch.Tensor]) -> State:
        """query_image [B, 3, H, W] + the text fields -> query state (batch first)."""

    @abstractmethod
    def encode_target(self, images: torch.Tensor) -> State:
        """[N, 3, H, W] candidate images -> gallery state (batch first)."""

    def query_prompt(self, benchmark: str | None) -> str | None:
        """The text a query's caption is put into on `benchmark` (None: outside a benchmark, e.g. `coir
        search`), CAPTION_FIELD marking where; None (the default): the caption as it is."""
        return None

    def frozen_image_features(self) -> FrozenPart | None:
        """The frozen start of the image path (images -> features) and its identity; None (the
        default) when the whole image path trains."""
        return None

    def encode_target_features(self, features: torch.Tensor) -> State:
        """encode_target from the outputs of frozen_image_features().module instead of images."""
        raise NotImplementedError(f"{type(self).__name__} ({self.family}) has no frozen image part")

    def score(self, query_state: State, gallery_state: State) -> torch.Tensor:
        """Query states [q, ...] x gallery states [g, ...] -> similarities [q, g] (higher = better).
        Callers pass chunks sized by the memory budget."""
        return query_state @ gallery_state.T

    @abstractmethod
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The training objective on one batch: {"loss": total, <named terms>...}."""

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """= loss(batch), so that DDP / DeepSpeed wrappers (which call forward) drive training."""
        return self.loss(batch)

    @abstractmethod
    def processor(self) -> Processor:
        """The image transform and text encoding this model expects."""

    @abstractmethod
    def export_config(self) -> dict[str, Any]:
        """JSON-ready description that rebuilds this architecture from an export (see the spec)."""

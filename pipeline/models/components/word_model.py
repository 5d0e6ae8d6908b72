"""What the word-vocabulary families (ARTEMIS, CMAP, MANME) share: the options, the model skeleton
(text encoder over GloVe words, the EM / IS heads, the temperature, two-stage freezing, processor,
export description) and building from a vocabulary, a coir export or an export folder.

A family subclasses WordModelConfig (its name, defaults, extra options) and WordRetrievalModel (its
image encoder, states, score and loss), and builds with `word_family_builders`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from coir.common.errors import ConfigError, MissingInputError
from coir.datasets.vocab import Vocabulary
from coir.pipeline.models.base import RetrievalModel
from coir.pipeline.models.components.em_is import FeatureAttention
from coir.pipeline.models.components.glove import word_embedding
from coir.pipeline.models.components.processor import WordProcessor
from coir.pipeline.models.components.text import BiGRUEncoder, LSTMEncoder
from coir.pipeline.models.config import ModelConfig
from coir.pipeline.models.registry import FamilySpec

VOCABULARY = "vocabulary.json"  # the vocabulary's file inside an export
# options that fix the shapes of the shared parts: an init_from export must agree on them
WORD_ARCHITECTURE = ("word_dim", "embed_dim", "text_encoder", "lstm_hidden", "backbone")


@dataclass
class WordModelConfig(ModelConfig):
    vocabulary: str | None = None  # word vocabulary JSON from `coir data vocab` (required)
    glove: str | None = None  # local GloVe text file (the papers: 840B.300d) for the word embeddings
    word_dim: int = 300  # word embedding size (GloVe's)
    embed_dim: int = 512  # the joint embedding size
    text_encoder: str = "bigru"  # bigru (256 per direction) | lstm (hidden lstm_hidden, max over time)
    lstm_hidden: int = 1024
    backbone: str = "resnet50"  # resnet18 | resnet50 | resnet152 (torchvision architectures)
    backbone_weights: str | None = None  # local torchvision ResNet state-dict file; random without
    image_size: int = 224  # centre crop
    resize: int = 256  # shorter side before the crop
    max_length: int = 64  # word ids per text, <start> and <end> included
    # scores are multiplied by exp(temperature) before the cross-entropy; ln(1 / 0.07) as the references
    temperature: float = 2.65926
    learnable_temperature: bool = True
    freeze_backbone: bool = False  # stage 1 of the two-stage recipe
    freeze_word_embeddings: bool = False  # stage 1 of the two-stage recipe

    def input_paths(self) -> dict[str, str | None]:
        return super().input_paths() | {
            "model.vocabulary": self.vocabulary,
            "model.glove": self.glove,
            "model.backbone_weights": self.backbone_weights,
        }


def text_encoder(cfg: WordModelConfig, vocab: Vocabulary, load_glove: bool) -> nn.Module:
    embedding, _ = word_embedding(vocab.words, cfg.word_dim, cfg.glove if load_glove else None)
    if cfg.text_encoder == "bigru":
        return BiGRUEncoder(embedding, cfg.embed_dim)
    if cfg.text_encoder == "lstm":
        return LSTMEncoder(embedding, cfg.embed_dim, hidden_dim=cfg.lstm_hidden)
    raise ConfigError(f"key 'model.text_encoder': must be bigru or lstm, got {cfg.text_encoder!r}")


class WordRetrievalModel(RetrievalModel):
    """The shared skeleton. `image_encoder` (built by the family, before the text parts so that a
    seed gives the same weights as always) must hold its CNN trunk as `.cnn`."""

    def __init__(
        self, cfg: WordModelConfig, vocab: Vocabulary, image_encoder: nn.Module, load_weights: bool = True
    ) -> None:
        """load_weights: read the GloVe file named in cfg (False when the weights come from an export
        or another model right after)."""
        super().__init__()
        self.cfg = cfg
        self.vocab = vocab
        self.image_encoder = image_encoder
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

    def configure(self) -> None:
        """Freezing for stage 1 of the two-stage recipe (the recurrent encoder and heads train)."""
        self.image_encoder.cnn.requires_grad_(not self.cfg.freeze_backbone)
        self.text_encoder.embedding.requires_grad_(not self.cfg.freeze_word_embeddings)
        self.train(self.training)

    def train(self, mode: bool = True) -> WordRetrievalModel:
        """A frozen backbone is a fixed feature extractor: its BatchNorm layers keep their running
        statistics (eval mode) in training too, so an image's feature does not depend on its batch,
        on how the batch is split over ranks, or on whether it was computed once and cached. (The
        references only stop the gradients: their frozen CNN still normalises with batch statistics.)"""
        super().train(mode)
        if self.cfg.freeze_backbone:
            self.image_encoder.cnn.eval()
        return self

    def encode_text(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.text_encoder(batch["input_ids"], batch["lengths"])

    def em_text(self, text: torch.Tensor) -> torch.Tensor:
        """Tr(m) = l2n(Lin(m)), the text side of EM."""
        return F.normalize(self.transform_text(text), dim=-1)

    def scale(self) -> torch.Tensor:
        """exp(temperature), the factor on the scores before the cross-entropy (a scalar)."""
        return self.temp.exp().squeeze(0)

    def processor(self) -> WordProcessor:
        cfg = self.cfg
        return WordProcessor(self.vocab, cfg.max_length, cfg.image_size, cfg.resize)

    def export_config(self) -> dict[str, Any]:
        model = dataclasses.asdict(self.cfg)
        # the weights travel in the export: nothing is read from these paths again
        model.update(vocabulary=None, glove=None, backbone_weights=None, init_from=None)
        return {"model": model}


M = TypeVar("M", bound=WordRetrievalModel)


@dataclass(frozen=True)
class WordFamilyBuilders:
    """The `build`, `save_assets` and `rebuild` of a word-vocabulary family's FamilySpec."""

    build: Callable[[Any], RetrievalModel]
    save_assets: Callable[[RetrievalModel, Path], None]
    rebuild: Callable[[str, dict[str, Any], Path], RetrievalModel]
    config_class: type[WordModelConfig]

    def spec(self, name: str, models: tuple[str, ...]) -> FamilySpec:
        return FamilySpec(name, self.config_class, models, self.build, self.save_assets, self.rebuild)


def word_family_builders(
    model_class: type[M], config_class: type[WordModelConfig], architecture: tuple[str, ...]
) -> WordFamilyBuilders:
    """Builders of a family whose model is model_class(cfg, vocab, load_weights=...); `architecture`
    names the options an init_from export must share (WORD_ARCHITECTURE and the family's own)."""

    def build(cfg: WordModelConfig) -> M:
        if cfg.init_from:
            return build_from_coir_export(cfg)
        if not cfg.vocabulary:
            raise ConfigError(
                "key 'model.vocabulary': a word vocabulary is required (make one with coir data vocab)"
            )
        return model_class(cfg, Vocabulary.load(cfg.vocabulary))

    def build_from_coir_export(cfg: WordModelConfig) -> M:
        """The architecture and weights of the export cfg.init_from, the training options of cfg
        (e.g. stage 2 of the two-stage recipe starting from stage 1's export, unfrozen)."""
        from coir.pipeline.models.export import load_export

        source = load_export(cfg.init_from)
        if not isinstance(source, model_class):
            raise ConfigError(f"model.init_from: {cfg.init_from} is not a {model_class.family} coir export")
        changed = [k for k in architecture if getattr(cfg, k) != getattr(source.cfg, k)]
        if changed:
            raise ConfigError(
                f"model.init_from: {cfg.init_from} has another architecture: "
                + ", ".join(
                    f"model.{k} {getattr(source.cfg, k)!r} there, {getattr(cfg, k)!r} here" for k in changed
                )
            )
        start = dataclasses.replace(cfg, vocabulary=None, glove=None, backbone_weights=None)
        model = model_class(start, source.vocab, load_weights=False)
        state = source.state_dict()
        if not cfg.learnable_temperature:
            state.pop("temp", None)
        model.load_state_dict(state, strict=cfg.learnable_temperature)
        return model

    def save_assets(model: RetrievalModel, folder: Path) -> None:
        model.vocab.save(folder / VOCABULARY)

    def rebuild(name: str, config: dict[str, Any], folder: Path) -> M:
        path = folder / VOCABULARY
        if not path.is_file():
            raise MissingInputError(path, "word vocabulary of the export")
        cfg = config_class.from_export(config["model"], name)
        return model_class(cfg, Vocabulary.load(path), load_weights=False)

    return WordFamilyBuilders(build, save_assets, rebuild, config_class)

"""Building ARTEMIS models: random or local weights, a coir export to start from, an export."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from coir.common.errors import ConfigError, MissingInputError
from coir.datasets.vocab import Vocabulary
from coir.pipeline.models.artemis.config import ArtemisModelConfig
from coir.pipeline.models.artemis.model import Artemis

VOCABULARY = "vocabulary.json"  # the vocabulary's file inside an export


def build(cfg: ArtemisModelConfig) -> Artemis:
    if cfg.init_from:
        return build_from_coir_export(cfg)
    if not cfg.vocabulary:
        raise ConfigError(
            "key 'model.vocabulary': a word vocabulary is required (make one with coir data vocab)"
        )
    return Artemis(cfg, Vocabulary.load(cfg.vocabulary))


def build_from_coir_export(cfg: ArtemisModelConfig) -> Artemis:
    """The architecture and weights of the export cfg.init_from, the training options of cfg
    (e.g. stage 2 of the two-stage recipe starting from stage 1's export, unfrozen)."""
    from coir.pipeline.models.export import load_export

    source = load_export(cfg.init_from)
    if not isinstance(source, Artemis):
        raise ConfigError(f"model.init_from: {cfg.init_from} is not an ARTEMIS coir export")
    architecture = ("word_dim", "embed_dim", "text_encoder", "lstm_hidden", "backbone", "pooling")
    changed = [k for k in architecture if getattr(cfg, k) != getattr(source.cfg, k)]
    if changed:
        raise ConfigError(
            f"model.init_from: {cfg.init_from} has another architecture: "
            + ", ".join(
                f"model.{k} {getattr(source.cfg, k)!r} there, {getattr(cfg, k)!r} here" for k in changed
            )
        )
    start = dataclasses.replace(cfg, vocabulary=None, glove=None, backbone_weights=None)
    model = Artemis(start, source.vocab, load_weights=False)
    state = source.state_dict()
    if not cfg.learnable_temperature:
        state.pop("temp", None)
    model.load_state_dict(state, strict=cfg.learnable_temperature)
    return model


def save_assets(model: Artemis, folder: Path) -> None:
    model.vocab.save(folder / VOCABULARY)


def rebuild(name: str, config: dict[str, Any], folder: Path) -> Artemis:
    path = folder / VOCABULARY
    if not path.is_file():
        raise MissingInputError(path, "word vocabulary of the export")
    cfg = ArtemisModelConfig.from_export(config["model"], name)
    return Artemis(cfg, Vocabulary.load(path), load_weights=False)

"""Building Pic2Word models: an open_clip architecture with random or local weights and the mapping
network random or from a Pic2Word checkpoint, a coir export to start from, an export folder, and the
baselines derived from a model."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from coir.common.errors import ConfigError, DataFormatError
from coir.pipeline.models.components.clip import (
    build_clip,
    clip_architecture,
    load_clip_checkpoint,
    rebuild_clip_model,
)
from coir.pipeline.models.loading import load_state_checked
from coir.pipeline.models.pic2word.config import Pic2WordModelConfig
from coir.pipeline.models.pic2word.model import MODELS, Pic2Word

BASELINES = ("image-only", "text-only")
MAPPING_KEY = "state_dict_img2text"  # where the reference's checkpoints (src/main.py) keep the mapping


def build(cfg: Pic2WordModelConfig) -> Pic2Word:
    if cfg.init_from:
        if cfg.clip_pretrained or cfg.mapping_pretrained:
            raise ConfigError(
                "model.init_from excludes model.clip_pretrained and model.mapping_pretrained: give one start"
            )
        return build_from_coir_export(cfg)
    config = clip_architecture(cfg.clip_model, cfg.clip_config)
    clip = build_clip(config)
    if cfg.clip_pretrained:
        load_clip_checkpoint(clip, cfg.clip_pretrained, cfg.clip_model)
    model = MODELS[cfg.name](cfg, clip, config)
    if cfg.mapping_pretrained:
        load_mapping(model, cfg.mapping_pretrained)
    return model


def load_mapping(model: Pic2Word, path: str | Path) -> None:
    """The mapping network's weights from a reference checkpoint (its state_dict_img2text, keys possibly
    prefixed by DDP's "module.") or a plain state dict; every key checked (ConfigError naming the file)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors alike: the file is not a weights file
        raise DataFormatError(path, f"not a torch checkpoint: {e}") from e
    if not isinstance(checkpoint, dict):
        raise DataFormatError(path, f"expected a dict of weights, got {type(checkpoint).__name__}")
    state = checkpoint.get(MAPPING_KEY, checkpoint)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    what = f"key 'model.mapping_pretrained': {path} is not a Pic2Word mapping of this shape"
    load_state_checked(model.mapping, state, lambda _key: False, what)


def build_from_coir_export(cfg: Pic2WordModelConfig) -> Pic2Word:
    """The CLIP architecture and all weights of the export cfg.init_from; the other options from cfg."""
    from coir.pipeline.models.export import load_export

    source = load_export(cfg.init_from)
    if not isinstance(source, Pic2Word):
        raise ConfigError(f"model.init_from: {cfg.init_from} is not a pic2word coir export")
    start = dataclasses.replace(cfg, clip_model=source.cfg.clip_model, clip_config=source.clip_config)
    model = MODELS[cfg.name](start, build_clip(source.clip_config), source.clip_config)
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as e:
        raise ConfigError(f"model.init_from: {cfg.init_from} has another mapping shape: {e}") from e
    return model


def derive_baseline(model: Pic2Word, kind: str) -> Pic2Word:
    """image-only or text-only on the model's own CLIP (shared, not copied)."""
    cfg = dataclasses.replace(model.cfg, name=kind)
    return MODELS[kind](cfg, model.clip, model.clip_config, model.mapping)


def save_assets(model: Pic2Word, folder: Path) -> None:
    """Nothing beside the weights: the tokenizer's vocabulary ships with open_clip."""


def rebuild(name: str, config: dict[str, Any], folder: Path) -> Pic2Word:
    return rebuild_clip_model(MODELS[name], Pic2WordModelConfig.from_export(config["model"], name), folder)

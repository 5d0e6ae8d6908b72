"""Building CLIP4Cir models: an open_clip architecture (a registered name or a full config) with random
or local weights, a coir export to start from (stage 2 from stage 1), or an export folder."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from coir.common.errors import ConfigError
from coir.pipeline.models.clip4cir.config import Clip4CirModelConfig
from coir.pipeline.models.clip4cir.model import MODELS, Clip4Cir
from coir.pipeline.models.components.clip import (
    build_clip,
    clip_architecture,
    load_clip_checkpoint,
    rebuild_clip_model,
)


def build(cfg: Clip4CirModelConfig) -> Clip4Cir:
    if cfg.init_from:
        if cfg.clip_pretrained:
            raise ConfigError(
                "model.init_from and model.clip_pretrained are exclusive: give one starting point"
            )
        return build_from_coir_export(cfg)
    config = clip_architecture(cfg.clip_model, cfg.clip_config)
    clip = build_clip(config)
    if cfg.clip_pretrained:
        load_clip_checkpoint(clip, cfg.clip_pretrained, cfg.clip_model)
    return MODELS[cfg.name](cfg, clip, config)


def build_from_coir_export(cfg: Clip4CirModelConfig) -> Clip4Cir:
    """The CLIP architecture and weights of the export cfg.init_from (and its Combiner when both have
    one), the mode and training options of cfg: the reference's stage 2 (Combiner on frozen CLIP)
    from stage 1 (CLIP tuned with the sum)."""
    from coir.pipeline.models.export import load_export

    source = load_export(cfg.init_from)
    if not isinstance(source, Clip4Cir):
        raise ConfigError(f"model.init_from: {cfg.init_from} is not a clip4cir coir export")
    start = dataclasses.replace(
        cfg, clip_model=source.cfg.clip_model, clip_config=source.clip_config, clip_pretrained=None
    )
    model = build_clip(source.clip_config)
    model.load_state_dict(source.clip.state_dict())
    result = MODELS[start.name](start, model, source.clip_config)
    if result.combiner is not None and source.combiner is not None:
        try:
            result.combiner.load_state_dict(source.combiner.state_dict())
        except RuntimeError as e:
            raise ConfigError(f"model.init_from: {cfg.init_from} has another Combiner shape: {e}") from e
    return result


def save_assets(model: Clip4Cir, folder: Path) -> None:
    """Nothing beside the weights: the tokenizer's vocabulary ships with open_clip."""


def rebuild(name: str, config: dict[str, Any], folder: Path) -> Clip4Cir:
    return rebuild_clip_model(MODELS[name], Clip4CirModelConfig.from_export(config["model"], name), folder)


def derive_baseline(model: Clip4Cir, kind: str) -> Clip4Cir:
    """image-only / text-only / sum from a trained CLIP4Cir's towers (the trained CLIP features, unfused)."""
    cfg = dataclasses.replace(model.cfg, name=kind)
    derived = MODELS[kind](cfg, copy.deepcopy(model.clip), model.clip_config)
    derived.load_state_dict(model.state_dict())
    return derived.to(next(model.parameters()).device)

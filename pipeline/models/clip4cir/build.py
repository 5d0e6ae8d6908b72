"""Building CLIP4Cir models: an open_clip architecture (a registered name or a full config) with random
or local weights, a coir export to start from (stage 2 from stage 1), or an export folder."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from coir.common.errors import ConfigError, DataFormatError
from coir.pipeline.models.clip4cir.config import Clip4CirModelConfig
from coir.pipeline.models.clip4cir.model import BASELINE_MODELS, Clip4Cir


def clip_architecture(cfg: Clip4CirModelConfig) -> dict[str, Any]:
    """The full open_clip architecture: cfg.clip_config, or the registered config of cfg.clip_model."""
    if cfg.clip_config:
        config = copy.deepcopy(dict(cfg.clip_config))
    else:
        from open_clip import get_model_config

        config = get_model_config(cfg.clip_model)
        if config is None:
            raise ConfigError(
                f"key 'model.clip_model': {cfg.clip_model!r} is not an open_clip model config "
                "(open_clip.list_models(); or give the architecture as model.clip_config)"
            )
    for key in ("embed_dim", "vision_cfg", "text_cfg"):
        if key not in config:
            raise ConfigError(f"key 'model.clip_config': missing {key!r}")
    return config


def build_clip(config: dict[str, Any]) -> nn.Module:
    """An open_clip CLIP (or CustomTextCLIP) with random weights from a full architecture config."""
    from open_clip.model import CLIP, CustomTextCLIP

    arguments = copy.deepcopy(config)
    custom_text = arguments.pop("custom_text", False)
    # CLIP's own temperature is unused here; shape [1], as DeepSpeed requires of every parameter
    arguments["nonscalar_logit_scale"] = True
    return (CustomTextCLIP if custom_text else CLIP)(**arguments)


def build(cfg: Clip4CirModelConfig) -> Clip4Cir:
    if cfg.init_from:
        if cfg.clip_pretrained:
            raise ConfigError(
                "model.init_from and model.clip_pretrained are exclusive: give one starting point"
            )
        return build_from_coir_export(cfg)
    config = clip_architecture(cfg)
    clip = build_clip(config)
    if cfg.clip_pretrained:
        from open_clip import load_checkpoint

        try:
            load_checkpoint(clip, cfg.clip_pretrained, strict=True)
        except (RuntimeError, KeyError) as e:
            raise DataFormatError(
                cfg.clip_pretrained, f"not an open_clip checkpoint of {cfg.clip_model}: {e}"
            ) from e
    return Clip4Cir(cfg, clip, config)


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
    result = Clip4Cir(start, model, source.clip_config)
    if result.combiner is not None and source.combiner is not None:
        try:
            result.combiner.load_state_dict(source.combiner.state_dict())
        except RuntimeError as e:
            raise ConfigError(f"model.init_from: {cfg.init_from} has another Combiner shape: {e}") from e
    return result


def save_assets(model: Clip4Cir, folder: Path) -> None:
    """Nothing beside the weights: the tokenizer's vocabulary ships with open_clip."""


def rebuild(name: str, config: dict[str, Any], folder: Path) -> Clip4Cir:
    cfg = Clip4CirModelConfig.from_export(config["model"], name)
    if not cfg.clip_config:
        raise DataFormatError(
            folder / "coir_model.json", "missing the open_clip architecture", field="clip_config"
        )
    return Clip4Cir(cfg, build_clip(cfg.clip_config), cfg.clip_config)


def derive_baseline(model: Clip4Cir, kind: str) -> Clip4Cir:
    """image-only / text-only / sum from a trained CLIP4Cir's towers (the trained CLIP features, unfused)."""
    derived = BASELINE_MODELS[kind](model.cfg, copy.deepcopy(model.clip), model.clip_config)
    derived.load_state_dict(model.state_dict())
    return derived.to(next(model.parameters()).device)

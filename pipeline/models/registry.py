"""Model registry: ModelConfig -> RetrievalModel, and baselines derived from a trained CASE."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from coir.common.errors import ConfigError
from coir.pipeline.models.baselines import ImageOnly, TextOnly, copy_parts
from coir.pipeline.models.blip import BlipParts, config_from_dict, load_pretrained, preset_config
from coir.pipeline.models.blip_model import BlipRetrievalModel
from coir.pipeline.models.case import CASE
from coir.pipeline.models.config import ModelConfig
from coir.pipeline.models.tokenizer import load_tokenizer

MODELS: dict[str, type[BlipRetrievalModel]] = {"case": CASE, "image-only": ImageOnly, "text-only": TextOnly}
MODEL_NAMES = tuple(MODELS)
BASELINES = ("image-only", "text-only")


def model_class(name: str) -> type[BlipRetrievalModel]:
    if name not in MODELS:
        raise ConfigError(f"model.name: unknown model {name!r} (choose from {', '.join(MODELS)})")
    return MODELS[name]


def resolve_tokenizer(cfg: ModelConfig) -> Any:
    if cfg.tokenizer:
        return load_tokenizer(cfg.tokenizer)
    if cfg.pretrained:
        return load_tokenizer(cfg.pretrained)
    raise ConfigError(
        "model.tokenizer: a tokenizer directory is required when model.pretrained is not set "
        "(make one with coir.pipeline.models.tokenizer.train_wordpiece)"
    )


def assemble(cfg: ModelConfig, parts: BlipParts, tokenizer: Any) -> BlipRetrievalModel:
    vocab = parts.config.text_config.vocab_size
    if len(tokenizer) > vocab:
        raise ConfigError(
            f"model.tokenizer: {len(tokenizer)} tokens do not fit the text encoder's vocabulary of {vocab}"
        )
    model = model_class(cfg.name)(cfg, parts, tokenizer)
    model.configure()
    return model


def build_model(cfg: ModelConfig) -> BlipRetrievalModel:
    """A model from its config: weights from cfg.pretrained (a local BLIP retrieval checkpoint) or a
    randomly initialised size preset."""
    model_class(cfg.name)
    if cfg.init_from:
        if cfg.pretrained:
            raise ConfigError("model.init_from and model.pretrained are exclusive: give one starting point")
        return build_from_coir_export(cfg)
    tokenizer = resolve_tokenizer(cfg)
    if cfg.pretrained:
        parts = load_pretrained(cfg.pretrained)
    else:
        parts = BlipParts(preset_config(cfg.preset, len(tokenizer), cfg.image_size, cfg.projection_dim))
    return assemble(cfg, parts, tokenizer)


def build_from_coir_export(cfg: ModelConfig) -> BlipRetrievalModel:
    """cfg.name initialised from the weights and tokenizer of the coir export cfg.init_from."""
    from coir.pipeline.models.export import load_export

    source = load_export(cfg.init_from)
    if not isinstance(source, BlipRetrievalModel):
        raise ConfigError(f"model.init_from: {cfg.init_from} is not a BLIP-based coir export")
    start = dataclasses.replace(cfg, image_size=source.image_size, tokenizer=None)
    model = model_class(cfg.name)(start, copy_parts(source.parts()), source.tokenizer)
    if cfg.learnable_temperature and source.cfg.learnable_temperature:
        model.temp.data.copy_(source.temp.data)
    model.configure()
    return model


def build_from_export(name: str, config: dict[str, Any], tokenizer: Any) -> BlipRetrievalModel:
    """The architecture described by an export's config (random weights; the caller loads them)."""
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model_cfg = ModelConfig(**{k: v for k, v in config["model"].items() if k in fields})
    model_cfg.name = name
    return assemble(model_cfg, BlipParts(config_from_dict(config["blip"])), tokenizer)


def derive_baseline(model: BlipRetrievalModel, kind: str) -> BlipRetrievalModel:
    """image-only / text-only from a trained CASE's weights, without training (deep copies)."""
    if kind not in BASELINES:
        raise ConfigError(f"baseline: unknown baseline {kind!r} (choose from {', '.join(BASELINES)})")
    if model.name == kind:
        return copy.deepcopy(model)
    if not isinstance(model, CASE):
        raise ConfigError(f"baseline: {kind} can only be derived from a CASE model, not {model.name!r}")
    cfg = dataclasses.replace(
        model.cfg, name=kind, pretrained=None, tokenizer=None, image_size=model.image_size
    )
    derived = model_class(kind)(cfg, copy_parts(model.parts()), model.tokenizer)
    if model.cfg.learnable_temperature:
        derived.temp.data.copy_(model.temp.data)
    derived.configure()
    return derived.to(next(model.parameters()).device)


def tokenizer_dir(path: str | Path) -> Path:
    return Path(path) / "tokenizer"

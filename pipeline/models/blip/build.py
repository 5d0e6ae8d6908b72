"""Building BLIP-family models: from a preset, a local BLIP checkpoint, a coir export, or derived."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from coir.common.atomic import atomic_dir
from coir.common.errors import ConfigError, DataFormatError, MissingInputError
from coir.pipeline.models.blip.baselines import ImageOnly, ImageTextSum, TextOnly, copy_parts
from coir.pipeline.models.blip.case import CASE
from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.blip.model import BlipRetrievalModel
from coir.pipeline.models.blip.parts import (
    PRESETS,
    BlipParts,
    config_from_dict,
    load_pretrained,
    preset_config,
)
from coir.pipeline.models.blip.tokenizer import load_tokenizer

MODELS: dict[str, type[BlipRetrievalModel]] = {
    "case": CASE,
    "image-only": ImageOnly,
    "text-only": TextOnly,
    "sum": ImageTextSum,
}
BASELINES = ("image-only", "text-only", "sum")
TOKENIZER = "tokenizer"  # the tokenizer's folder inside an export


def resolve_tokenizer(cfg: BlipModelConfig) -> Any:
    if cfg.tokenizer:
        return load_tokenizer(cfg.tokenizer)
    if cfg.pretrained:
        return load_tokenizer(cfg.pretrained, key="model.pretrained")
    raise ConfigError(
        "model.tokenizer: a tokenizer directory is required when model.pretrained is not set "
        "(make one with coir.pipeline.models.blip.tokenizer.train_wordpiece)"
    )


def assemble(cfg: BlipModelConfig, parts: BlipParts, tokenizer: Any) -> BlipRetrievalModel:
    vocab = parts.config.text_config.vocab_size
    if len(tokenizer) > vocab:
        raise ConfigError(
            f"model.tokenizer: {len(tokenizer)} tokens do not fit the text encoder's vocabulary of {vocab}"
        )
    model = MODELS[cfg.name](cfg, parts, tokenizer)
    learned = getattr(parts, "temperature", None)  # a converted original BLIP checkpoint's temp
    if cfg.temperature is None and learned is not None:
        model.temp.data.fill_(float(learned))
    model.configure()
    return model


def build(cfg: BlipModelConfig) -> BlipRetrievalModel:
    """Weights from cfg.init_from (a coir export), cfg.pretrained (a local BLIP retrieval
    checkpoint) or a randomly initialised size preset."""
    if cfg.init_from:
        if cfg.pretrained:
            raise ConfigError("model.init_from and model.pretrained are exclusive: give one starting point")
        return build_from_coir_export(cfg)
    tokenizer = resolve_tokenizer(cfg)
    if cfg.pretrained:
        parts = load_pretrained(cfg.pretrained, allow_partial=cfg.allow_partial)
        check_architecture(cfg, parts.config, f"the model.pretrained checkpoint {cfg.pretrained}")
    else:
        preset = cfg.preset or "tiny"
        parts = BlipParts(preset_config(preset, len(tokenizer), cfg.image_size, cfg.projection_dim))
    return assemble(cfg, parts, tokenizer)


def _sizes(vision: dict[str, Any], text: dict[str, Any]) -> dict[str, Any]:
    return {
        "vision hidden": vision["hidden_size"],
        "vision layers": vision["num_hidden_layers"],
        "patch": vision["patch_size"],
        "text hidden": text["hidden_size"],
        "text layers": text["num_hidden_layers"],
    }


def check_architecture(cfg: BlipModelConfig, blip_config: Any, source: str) -> None:
    """With a checkpoint as the starting point its architecture wins: model.preset and
    model.projection_dim may only restate it (ConfigError naming the key otherwise)."""
    if cfg.preset is not None:
        if cfg.preset not in PRESETS:
            choices = ", ".join(PRESETS)
            raise ConfigError(f"model.preset: unknown preset {cfg.preset!r} (choose from {choices})")
        wanted = _sizes(PRESETS[cfg.preset]["vision"], PRESETS[cfg.preset]["text"])
        found = _sizes(blip_config.vision_config.to_dict(), blip_config.text_config.to_dict())
        if wanted != found:
            raise ConfigError(
                f"key 'model.preset': preset {cfg.preset!r} ({wanted}) cannot apply to {source} ({found}); "
                "the architecture comes from the checkpoint: remove model.preset (model.preset=null)"
            )
    dim = blip_config.image_text_hidden_size
    if cfg.projection_dim is not None and cfg.projection_dim != dim:
        raise ConfigError(
            f"key 'model.projection_dim': {cfg.projection_dim} cannot apply to {source}, whose projections "
            f"are {dim}-d; remove model.projection_dim (model.projection_dim=null)"
        )


def build_from_coir_export(cfg: BlipModelConfig) -> BlipRetrievalModel:
    """cfg.name initialised from the weights and tokenizer of the coir export cfg.init_from."""
    from coir.pipeline.models.export import load_export

    source = load_export(cfg.init_from)
    if not isinstance(source, BlipRetrievalModel):
        raise ConfigError(f"model.init_from: {cfg.init_from} is not a BLIP-family coir export")
    where = f"the model.init_from export {cfg.init_from}"
    check_architecture(cfg, source.blip_config, where)
    if cfg.tokenizer:
        raise ConfigError(f"key 'model.tokenizer': cannot apply to {where}, which brings its own tokenizer")
    if cfg.image_size is not None and cfg.image_size != source.image_size:
        raise ConfigError(
            f"key 'model.image_size': {cfg.image_size} cannot apply to {where}, trained at "
            f"{source.image_size} px; remove model.image_size"
        )
    start = dataclasses.replace(cfg, image_size=source.image_size, tokenizer=None)
    # the source model is dropped here: its modules move over without a copy
    model = MODELS[cfg.name](start, source.parts(), source.tokenizer)
    if cfg.temperature is None:
        model.temp.data.copy_(source.temp.data)
    model.configure()
    return model


def save_assets(model: BlipRetrievalModel, folder: Path) -> None:
    with atomic_dir(folder / TOKENIZER) as staging:
        model.tokenizer.save_pretrained(str(staging))


def rebuild(name: str, config: dict[str, Any], folder: Path) -> BlipRetrievalModel:
    """The architecture an export describes, its parameters empty (meta device); load_export assigns them."""
    if not isinstance(config.get("blip"), dict):
        raise DataFormatError(folder / "coir_model.json", "expected the BLIP config", field="config.blip")
    tok_dir = folder / TOKENIZER
    if not tok_dir.is_dir():
        raise MissingInputError(tok_dir, "tokenizer directory")
    from accelerate import init_empty_weights

    model_cfg = BlipModelConfig.from_export(config["model"], name)
    # parameters on the meta device: the caller assigns the saved ones, so no rank ever holds a random
    # full copy first (buffers stay real: non-persistent ones are not in the saved weights)
    with init_empty_weights():
        parts = BlipParts(config_from_dict(config["blip"]))
        return assemble(model_cfg, parts, load_tokenizer(tok_dir))


def derive_baseline(model: BlipRetrievalModel, kind: str) -> BlipRetrievalModel:
    """image-only / text-only / sum from a trained CASE's weights, without training (deep copies)."""
    if model.name == kind:
        return copy.deepcopy(model)
    if not isinstance(model, CASE):
        raise ConfigError(f"baseline: {kind} can only be derived from a CASE model, not {model.name!r}")
    cfg = dataclasses.replace(
        model.cfg, name=kind, pretrained=None, tokenizer=None, image_size=model.image_size
    )
    derived = MODELS[kind](cfg, copy_parts(model.parts()), model.tokenizer)
    derived.temp.data.copy_(model.temp.data)
    derived.configure()
    return derived.to(next(model.parameters()).device)

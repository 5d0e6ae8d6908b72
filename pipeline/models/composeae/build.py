"""Building ComposeAE models: a local BERT folder + random or local ResNet weights, a coir export to
start from (model.init_from), or an export folder. An export is self-contained: BERT's weights are in
model.safetensors with the rest, its config and tokenizer in text_model/."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from coir.common.atomic import atomic_dir
from coir.common.errors import ConfigError
from coir.pipeline.models.composeae.config import ComposeAEModelConfig
from coir.pipeline.models.composeae.model import ComposeAE
from coir.pipeline.models.composeae.text import bert_from_config, load_bert, load_tokenizer

TEXT_MODEL = "text_model"  # the BERT config + tokenizer folder inside an export
# options that fix the shapes: an init_from export must agree on them
ARCHITECTURE = ("embed_dim", "backbone", "conv_channels", "conv_pool")


def build(cfg: ComposeAEModelConfig) -> ComposeAE:
    if cfg.init_from:
        return build_from_coir_export(cfg)
    return ComposeAE(cfg, load_bert(cfg.text_model), load_tokenizer(cfg.text_model))


def build_from_coir_export(cfg: ComposeAEModelConfig) -> ComposeAE:
    """Architecture, BERT and weights of the export cfg.init_from; the training options of cfg."""
    from coir.pipeline.models.export import load_export

    source = load_export(cfg.init_from)
    if not isinstance(source, ComposeAE):
        raise ConfigError(f"model.init_from: {cfg.init_from} is not a composeae coir export")
    changed = [k for k in ARCHITECTURE if getattr(cfg, k) != getattr(source.cfg, k)]
    if changed:
        raise ConfigError(
            f"model.init_from: {cfg.init_from} has another architecture: "
            + ", ".join(
                f"model.{k} {getattr(source.cfg, k)!r} there, {getattr(cfg, k)!r} here" for k in changed
            )
        )
    start = dataclasses.replace(cfg, text_model=None, backbone_weights=None)
    model = ComposeAE(start, source.text_encoder.bert, source.tokenizer, load_weights=False)
    state = source.state_dict()
    if not cfg.learnable_scale:
        state.pop("norm_scale", None)
    model.load_state_dict(state, strict=cfg.learnable_scale)
    return model


def save_assets(model: ComposeAE, folder: Path) -> None:
    with atomic_dir(folder / TEXT_MODEL) as staging:
        model.text_encoder.bert.config.save_pretrained(str(staging))
        model.tokenizer.save_pretrained(str(staging))


def rebuild(name: str, config: dict[str, Any], folder: Path) -> ComposeAE:
    cfg = ComposeAEModelConfig.from_export(config["model"], name)
    text = folder / TEXT_MODEL
    bert = bert_from_config(text)
    return ComposeAE(cfg, bert, load_tokenizer(text, "export text_model"), load_weights=False)

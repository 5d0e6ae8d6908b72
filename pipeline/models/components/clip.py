"""open_clip models for the families built on CLIP (CLIP4Cir, Pic2Word): the full architecture from a
registered name or a config given in full, random weights, and a local open_clip checkpoint loaded
strictly. Nothing is looked up online: exports carry the architecture in full."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coir.common.errors import ConfigError, DataFormatError


def clip_architecture(clip_model: str, clip_config: dict[str, Any] | None) -> dict[str, Any]:
    """The full open_clip architecture: clip_config (model.clip_config), or the registered config of the
    open_clip model name clip_model (model.clip_model)."""
    if clip_config:
        config = copy.deepcopy(dict(clip_config))
    else:
        from open_clip import get_model_config

        config = get_model_config(clip_model)
        if config is None:
            raise ConfigError(
                f"key 'model.clip_model': {clip_model!r} is not an open_clip model config "
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
    # shape [1], as DeepSpeed requires of every parameter (open_clip checkpoints hold a scalar; its
    # load_checkpoint reshapes it)
    arguments["nonscalar_logit_scale"] = True
    return (CustomTextCLIP if custom_text else CLIP)(**arguments)


def load_clip_checkpoint(clip: nn.Module, path: str | Path, clip_model: str) -> None:
    """A local open_clip checkpoint (a state dict, `{"state_dict": …}`, or OpenAI's TorchScript file) into
    `clip`, every key required (DataFormatError naming the file and the keys otherwise)."""
    from open_clip import load_checkpoint

    try:
        load_checkpoint(clip, str(path), strict=True)
    except (RuntimeError, KeyError) as e:
        raise DataFormatError(path, f"not an open_clip checkpoint of {clip_model}: {e}") from e


class FrozenImageFeatures(nn.Module):
    """CLIP's image tower, without gradients: the frozen part (images -> raw features) of a family whose
    image tower does not train (shared with the model, not copied)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.clip.encode_image(images).float()


def rebuild_clip_model(model_class: Any, cfg: Any, folder: Path) -> Any:
    """An open_clip family's model from its export config (`cfg.clip_config` holds the whole
    architecture; the export's weights are loaded afterwards)."""
    if not cfg.clip_config:
        raise DataFormatError(
            folder / "coir_model.json", "missing the open_clip architecture", field="clip_config"
        )
    return model_class(cfg, build_clip(cfg.clip_config), cfg.clip_config)

"""BLIP parts from transformers: vision transformer, BERT text encoder with cross-attention, projections.

Built from a size preset (random weights) or loaded from a local Hugging Face BlipForImageTextRetrieval
checkpoint directory. Module names match BlipForImageTextRetrieval's, so state-dict keys line up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from coir.common.errors import ConfigError, MissingInputError

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "vision": dict(
            hidden_size=128,
            intermediate_size=512,
            num_hidden_layers=3,
            num_attention_heads=4,
            image_size=64,
            patch_size=8,
            initializer_range=0.02,
        ),
        "text": dict(
            hidden_size=128,
            intermediate_size=512,
            num_hidden_layers=3,
            num_attention_heads=4,
            max_position_embeddings=64,
            # BERT's 0.02 leaves attention outputs tiny next to the normalised embeddings at hidden 128,
            # so a from-scratch [ENC] token barely sees the text or the image and CASE learns like an
            # image-only model; at 0.1 both reach the first token from step 0
            initializer_range=0.1,
        ),
        "projection_dim": 64,
    },
    # BLIP's real sizes (Salesforce/blip-itm-base-coco): ViT-B/16 at 384 px, BERT-base, 256-d projections
    "base": {
        "vision": dict(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=384,
            patch_size=16,
            initializer_range=0.02,
        ),
        "text": dict(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=512,
        ),
        "projection_dim": 256,
    },
}


def preset_config(
    preset: str, vocab_size: int, image_size: int | None = None, projection_dim: int | None = None
) -> Any:
    """A BlipConfig for a size preset; the text vocabulary comes from the tokenizer."""
    from transformers import BlipConfig

    if preset not in PRESETS:
        raise ConfigError(f"model.preset: unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    p = PRESETS[preset]
    vision = dict(p["vision"])
    if image_size is not None:
        if image_size % vision["patch_size"]:
            raise ConfigError(
                f"model.image_size: {image_size} is not a multiple of the patch size {vision['patch_size']}"
            )
        vision["image_size"] = image_size
    text = dict(
        p["text"],
        vocab_size=vocab_size,
        pad_token_id=0,
        is_decoder=True,
        encoder_hidden_size=vision["hidden_size"],
    )
    if vocab_size <= 30522:  # a small local vocabulary: BLIP's [DEC]/[SEP] ids do not exist in it
        text.update(bos_token_id=None, eos_token_id=None, sep_token_id=None)
    return BlipConfig(
        text_config=text, vision_config=vision, image_text_hidden_size=projection_dim or p["projection_dim"]
    )


class BlipParts(nn.Module):
    """The four BLIP retrieval parts CASE and its baselines are built from, and the checkpoint's learned
    temperature when it has one (transformers' BlipForImageTextRetrieval has none; BLIP's .pth has)."""

    temperature: float | None = None

    def __init__(self, config: Any) -> None:
        from transformers import BlipTextModel, BlipVisionModel

        super().__init__()
        self.config = config
        self.vision_model = BlipVisionModel(config.vision_config)
        self.text_encoder = BlipTextModel(config.text_config, add_pooling_layer=False)
        self.vision_proj = nn.Linear(config.vision_config.hidden_size, config.image_text_hidden_size)
        self.text_proj = nn.Linear(config.text_config.hidden_size, config.image_text_hidden_size)


def config_from_dict(d: dict[str, Any]) -> Any:
    from transformers import BlipConfig

    return BlipConfig.from_dict(d)


TEMPERATURE_FILE = "blip_temperature.json"  # written by `coir convert` from an original BLIP .pth's temp
NEEDED = ("vision_model.", "text_encoder.", "vision_proj.", "text_proj.")  # what CASE and its baselines use


def load_pretrained(path: str | Path, allow_partial: bool = False) -> BlipParts:
    """Parts of a local BlipForImageTextRetrieval checkpoint dir (nothing downloads). Missing weights of
    the parts used are a ConfigError naming them (unless allow_partial); unused keys are logged."""
    from transformers import BlipForImageTextRetrieval
    from transformers.utils import logging as hf_logging

    from coir.pipeline.models.loading import check_keys

    path = Path(path)
    if not path.is_dir():
        raise MissingInputError(path, "pretrained BLIP checkpoint directory (model.pretrained)")
    if not (path / "config.json").is_file():
        raise MissingInputError(path / "config.json", "BLIP checkpoint config")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # transformers' own load report is replaced by check_keys below
    try:
        full, info = BlipForImageTextRetrieval.from_pretrained(
            str(path), local_files_only=True, output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError) as e:
        raise ConfigError(
            f"model.pretrained: cannot load a BLIP retrieval checkpoint from {path}: {e}"
        ) from e
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = [k for k in info.get("missing_keys", ()) if k.startswith(NEEDED)]
    mismatched = [str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ())]
    check_keys(
        path,
        missing,
        info.get("unexpected_keys", ()),
        key="model.pretrained",
        allow_partial=allow_partial,
        mismatched=mismatched,
    )
    parts = BlipParts.__new__(BlipParts)
    nn.Module.__init__(parts)
    parts.config = full.config
    parts.vision_model = full.vision_model
    parts.text_encoder = full.text_encoder
    parts.vision_proj = full.vision_proj
    parts.text_proj = full.text_proj
    parts.temperature = read_temperature(path)
    return parts


def read_temperature(folder: Path) -> float | None:
    """The learned temperature `coir convert` kept in folder/blip_temperature.json; None without one."""
    import json

    from coir.common.errors import DataFormatError

    path = folder / TEMPERATURE_FILE
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())["temperature"]
    except (ValueError, KeyError, TypeError) as e:
        message = f'expected {{"temperature": number}}: {e!r}'
        raise DataFormatError(path, message, field="temperature") from e
    if not isinstance(value, int | float) or not value > 0:
        raise DataFormatError(path, f"expected a positive number, got {value!r}", field="temperature")
    return float(value)

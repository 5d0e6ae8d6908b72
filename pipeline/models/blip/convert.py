"""Original BLIP / LAVIS retrieval checkpoints (.pth) -> the Hugging Face BlipForImageTextRetrieval folder
that `model.pretrained` loads.

The source layout (salesforce/BLIP models/blip_retrieval.py, LAVIS blip_retrieval): {"model": state_dict}
with a timm-style ViT under `visual_encoder.*`, a BERT with cross-attention under `text_encoder.*` (already
named as transformers' BlipTextModel), `vision_proj`, `text_proj`, `itm_head`; the momentum copies
(`*_m.*`) and the contrastive queues (`image_queue`, `text_queue`, `idx_queue`, `ptr_queue`) are
training state of BLIP's own objective and are dropped (listed in the report). The learned temperature
`temp` has no place in transformers' model: it is kept in blip_temperature.json beside it, and
model.pretrained starts from it (model.temperature=null). The architecture is read
from the tensor shapes; attention heads are not visible in shapes (hidden / 64, as in ViT-B and BERT-base)
unless a BlipConfig JSON is given.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from coir.common.errors import ConfigError, DataFormatError, MissingInputError
from coir.pipeline.models.blip.parts import TEMPERATURE_FILE

#: momentum encoders and projections: BLIP's distillation targets, not needed to start from
MOMENTUM_PREFIXES = ("visual_encoder_m.", "text_encoder_m.", "vision_proj_m.", "text_proj_m.")
#: training state of BLIP's contrastive objective, and a buffer transformers rebuilds
DROPPED_KEYS = (
    "image_queue",
    "text_queue",
    "idx_queue",
    "ptr_queue",
    "text_encoder.embeddings.position_ids",
)
KEPT_PREFIXES = ("text_encoder.", "vision_proj.", "text_proj.", "itm_head.")
VISION_LAYER_NORM_EPS = 1e-6  # the original ViT's LayerNorm (transformers' BlipVisionConfig defaults to 1e-5)

_VISION_RULES = [
    (r"visual_encoder\.cls_token$", "vision_model.embeddings.class_embedding"),
    (r"visual_encoder\.pos_embed$", "vision_model.embeddings.position_embedding"),
    (r"visual_encoder\.patch_embed\.proj\.(weight|bias)$", r"vision_model.embeddings.patch_embedding.\1"),
    (r"visual_encoder\.norm\.(weight|bias)$", r"vision_model.post_layernorm.\1"),
    (r"visual_encoder\.blocks\.(\d+)\.norm([12])\.", r"vision_model.encoder.layers.\1.layer_norm\2."),
    (r"visual_encoder\.blocks\.(\d+)\.attn\.qkv\.", r"vision_model.encoder.layers.\1.self_attn.qkv."),
    (r"visual_encoder\.blocks\.(\d+)\.attn\.proj\.", r"vision_model.encoder.layers.\1.self_attn.projection."),
    (r"visual_encoder\.blocks\.(\d+)\.mlp\.(fc[12])\.", r"vision_model.encoder.layers.\1.mlp.\2."),
]


def read_original(path: str | Path) -> dict[str, Any]:
    """The state dict of a BLIP / LAVIS .pth ({"model": ...}, {"state_dict": ...} or the dict itself)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(path, "BLIP checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is no checkpoint
        raise DataFormatError(
            path,
            f"not a PyTorch checkpoint of tensors and plain containers (read with weights_only=True): {e}",
        ) from e
    for key in ("model", "state_dict"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise DataFormatError(
            path, "expected a state dict {name: tensor}, or one under 'model' / 'state_dict'"
        )
    if data and all(k.startswith("module.") for k in data):
        data = {k[len("module.") :]: v for k, v in data.items()}
    return data


def hf_name(key: str) -> str | None:
    """The BlipForImageTextRetrieval name of an original key; None for a key this layout does not have."""
    if key.startswith(KEPT_PREFIXES):
        return key
    for pattern, replacement in _VISION_RULES:
        renamed, count = re.subn(pattern, replacement, key)
        if count:
            return renamed
    return None


def convert_state(state: dict[str, Any], source: str | Path) -> tuple[dict[str, Any], list[str]]:
    """(HF-named tensors, dropped keys). Keys of neither kind (e.g. a captioning `text_decoder.*`) are a
    DataFormatError naming them."""
    from coir.pipeline.models.loading import listed

    converted: dict[str, Any] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    for key, tensor in state.items():
        if key.startswith(MOMENTUM_PREFIXES) or key in DROPPED_KEYS:
            dropped.append(key)
            continue
        name = hf_name(key)
        if name is None:
            unknown.append(key)
        else:
            converted[name] = tensor
    if unknown:
        raise DataFormatError(
            source,
            f"not a BLIP retrieval checkpoint: {len(unknown)} keys of another layout: {listed(unknown)}",
        )
    return converted, sorted(dropped)


def _layers(state: dict[str, Any], prefix: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(found) + 1 if found else 0


def infer_config(hf: dict[str, Any], source: str | Path) -> Any:
    """A BlipConfig from the converted tensors' shapes."""
    from transformers import BlipConfig

    try:
        hidden = hf["vision_model.embeddings.class_embedding"].shape[-1]
        patch = hf["vision_model.embeddings.patch_embedding.weight"].shape[-1]
        positions = hf["vision_model.embeddings.position_embedding"].shape[1]
        words, text_hidden = hf["text_encoder.embeddings.word_embeddings.weight"].shape
        vision = dict(
            hidden_size=hidden,
            intermediate_size=hf["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
            num_hidden_layers=_layers(hf, "vision_model.encoder.layers."),
            num_attention_heads=max(1, hidden // 64),
            image_size=math.isqrt(positions - 1) * patch,
            patch_size=patch,
            layer_norm_eps=VISION_LAYER_NORM_EPS,
        )
        text = dict(
            vocab_size=words,
            hidden_size=text_hidden,
            intermediate_size=hf["text_encoder.encoder.layer.0.intermediate.dense.weight"].shape[0],
            num_hidden_layers=_layers(hf, "text_encoder.encoder.layer."),
            num_attention_heads=max(1, text_hidden // 64),
            max_position_embeddings=hf["text_encoder.embeddings.position_embeddings.weight"].shape[0],
            encoder_hidden_size=hf["text_encoder.encoder.layer.0.crossattention.self.key.weight"].shape[1],
        )
        projection = hf["vision_proj.weight"].shape[0]
    except KeyError as e:
        raise DataFormatError(
            source, f"not a BLIP retrieval checkpoint: no {e.args[0]} (after renaming)"
        ) from e
    if words <= 30522:  # not BERT's vocabulary plus BLIP's [DEC]/[ENC]: its special ids do not exist
        text.update(bos_token_id=None, eos_token_id=None, sep_token_id=None)
    return BlipConfig(text_config=text, vision_config=vision, image_text_hidden_size=projection)


def convert_checkpoint(
    source: str | Path, out: str | Path, tokenizer: str | Path | None = None, config: str | Path | None = None
) -> dict[str, Any]:
    """Write `out` as a BlipForImageTextRetrieval folder (+ the tokenizer folder's files when given).
    Returns the report: source, converted and dropped keys, whether a tokenizer was written."""
    import torch
    from transformers import BlipConfig, BlipForImageTextRetrieval

    from coir.common.atomic import atomic_dir
    from coir.pipeline.models.blip.tokenizer import load_tokenizer
    from coir.pipeline.models.loading import check_keys

    original = read_original(source)
    temp = original.pop("temp", None)
    hf, dropped = convert_state(original, source)
    if config is not None:
        if not Path(config).is_file():
            raise MissingInputError(config, "BlipConfig JSON (--config)")
        blip_config = BlipConfig.from_json_file(str(config))
    else:
        blip_config = infer_config(hf, source)
    tok = load_tokenizer(tokenizer, key="--tokenizer") if tokenizer is not None else None
    if tok is not None and len(tok) > blip_config.text_config.vocab_size:
        raise ConfigError(
            f"--tokenizer: {len(tok)} tokens do not fit the checkpoint's vocabulary of "
            f"{blip_config.text_config.vocab_size}"
        )
    with torch.device("meta"):
        shapes = BlipForImageTextRetrieval(blip_config).state_dict()
    mismatched = [k for k, v in hf.items() if k in shapes and tuple(v.shape) != tuple(shapes[k].shape)]
    check_keys(source, [k for k in shapes if k not in hf], [k for k in hf if k not in shapes],
               key="source", mismatched=mismatched)  # fmt: skip
    model = BlipForImageTextRetrieval(blip_config)
    model.load_state_dict(hf, strict=True, assign=True)
    with atomic_dir(out) as staging:
        model.save_pretrained(str(staging))
        if tok is not None:
            tok.save_pretrained(str(staging))
        if temp is not None:
            kept = {"temperature": float(temp), "source": f"temp of {Path(source).name}"}
            (staging / TEMPERATURE_FILE).write_text(json.dumps(kept))
    return {
        "source": str(Path(source).resolve()),
        "out": str(Path(out).resolve()),
        "converted": len(hf),
        "dropped": dropped,
        "tokenizer": str(Path(tokenizer).resolve()) if tokenizer is not None else None,
        "temperature": float(temp) if temp is not None else None,
    }

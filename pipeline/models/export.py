"""Export a trained model for evaluation: model.safetensors + coir_model.json + tokenizer/."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from coir.common.errors import DataFormatError, MissingInputError
from coir.pipeline.models.base import RetrievalModel

WEIGHTS = "model.safetensors"
META = "coir_model.json"
TOKENIZER = "tokenizer"


def save_export(model: RetrievalModel, out_dir: str | Path) -> Path:
    """Write the model's weights, rebuild config and tokenizer to out_dir (each file atomically)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = out / f".{WEIGHTS}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / WEIGHTS)
    meta = {"name": model.name, "config": model.export_config()}
    tmp = out / f".{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    os.replace(tmp, out / META)
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None:
        staging = Path(tempfile.mkdtemp(prefix=".tokenizer.", dir=out))
        tokenizer.save_pretrained(str(staging))
        old = out / TOKENIZER
        if old.exists():
            trash = out / f".{TOKENIZER}.old"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(old, trash)
            os.replace(staging, old)
            shutil.rmtree(trash)
        else:
            os.replace(staging, old)
    return out


def read_meta(export_dir: str | Path) -> dict[str, Any]:
    path = Path(export_dir) / META
    if not Path(export_dir).is_dir():
        raise MissingInputError(export_dir, "model export directory")
    if not path.is_file():
        raise MissingInputError(path, "model export config")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"not valid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise DataFormatError(path, "expected a JSON object")
    for key in ("name", "config"):
        if key not in meta:
            raise DataFormatError(path, "missing", field=key)
    return meta


def load_export(export_dir: str | Path, device: str | None = None) -> RetrievalModel:
    """Rebuild a model written by save_export (eval mode)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from coir.pipeline.models.registry import build_from_export, model_class
    from coir.pipeline.models.tokenizer import load_tokenizer

    d = Path(export_dir)
    meta = read_meta(d)
    weights, tok_dir = d / WEIGHTS, d / TOKENIZER
    if not weights.is_file():
        raise MissingInputError(weights, "model weights")
    if not tok_dir.is_dir():
        raise MissingInputError(tok_dir, "tokenizer directory")
    model_class(meta["name"])
    config = meta["config"]
    if not isinstance(config, dict) or "model" not in config or "blip" not in config:
        raise DataFormatError(d / META, "expected {'model': ..., 'blip': ...}", field="config")
    model = build_from_export(meta["name"], config, load_tokenizer(tok_dir))
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise DataFormatError(weights, f"unreadable safetensors file: {e}") from e
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise DataFormatError(weights, f"weights do not match the config in {META}: {e}") from e
    model.eval()
    return model.to(device) if device else model

"""Export a trained model for evaluation: model.safetensors + coir_model.json + the family's assets.

coir_model.json = {"family": ..., "name": ..., "config": model.export_config()}; the family's spec
writes what else the model needs (BLIP: tokenizer/, a word-vocabulary model: its vocabulary) and
rebuilds the architecture from the config when the export is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coir.common.atomic import atomic_path, write_text_atomic
from coir.common.errors import DataFormatError, MissingInputError
from coir.pipeline.models.base import RetrievalModel

WEIGHTS = "model.safetensors"
META = "coir_model.json"


def save_export(model: RetrievalModel, out_dir: str | Path, card: dict[str, Any] | None = None) -> Path:
    """Write the model's weights, its rebuild config, its family's assets and its provenance card (given,
    or one naming the model and code version) to out_dir (each file atomically; coir_model.json removed
    first and written last, so a folder with it is complete and whole)."""
    from safetensors.torch import save_file

    from coir.pipeline.card import build_card, write_card
    from coir.pipeline.models.registry import family_of

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # over an earlier export: mark it incomplete before replacing any of its files, so a kill mid-way
    # cannot leave its coir_model.json beside new weights
    (out / META).unlink(missing_ok=True)
    spec = family_of(model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    spec.save_assets(model, out)
    if card is None:
        card = build_card(
            kind="export", model_name=model.name, config={"model": model.export_config()["model"]}
        )
    write_card(out, card)
    meta = {"family": spec.name, "name": model.name, "config": model.export_config()}
    write_text_atomic(out / META, json.dumps(meta, indent=2, sort_keys=True))
    return out


def read_meta(export_dir: str | Path) -> dict:
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
    for key in ("family", "name", "config"):
        if key not in meta:
            raise DataFormatError(path, "missing", field=key)
    if not isinstance(meta["config"], dict) or not isinstance(meta["config"].get("model"), dict):
        raise DataFormatError(
            path, "expected an object with the model's config under 'model'", field="config"
        )
    return meta


def load_export(export_dir: str | Path, device: str | None = None) -> RetrievalModel:
    """Rebuild a model written by save_export (eval mode)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from coir.pipeline.models.registry import family

    d = Path(export_dir)
    meta = read_meta(d)
    weights = d / WEIGHTS
    if not weights.is_file():
        raise MissingInputError(weights, "model weights")
    spec = family(str(meta["family"]))
    if meta["name"] not in spec.models:
        raise DataFormatError(
            d / META, f"{meta['name']!r} is not a model of the {spec.name} family", field="name"
        )
    model = spec.rebuild(meta["name"], meta["config"], d)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise DataFormatError(weights, f"unreadable safetensors file: {e}") from e
    # a family may rebuild with empty (meta) parameters: the saved tensors then take their place
    assign = any(p.is_meta for p in model.parameters())
    try:
        model.load_state_dict(state, strict=True, assign=assign)
    except RuntimeError as e:
        raise DataFormatError(weights, f"weights do not match the config in {META}: {e}") from e
    model.eval()
    return model.to(device) if device else model

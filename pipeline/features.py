"""Feature shards: their format, and the check that a model may train on them.

`coir data features` (features_build.py) turns a triplet shard folder into a feature shard folder: the
same samples in the same order, with QUERY_FEATURE / TARGET_FEATURE (one .npy array each, the model's
frozen image part applied to the decoded image) in place of the JPEGs. The folder is a coir shard
folder (manifest.json with sha256 per shard, index.parquet, errors.parquet) whose manifest also holds

    "features": {"identity": <FrozenPart.identity>, "identity_sha256": "...", "dtype": "float32",
                 "decode": {"image_mode": "RGB", "draft_size": null},
                 "source": [{"name", "bytes", "sha256"} of each input shard, in order]}

Training reads them with data.inputs=features; `check_inputs` stops the run at start when the model
has no frozen part, when the shards' identity is not the model's frozen part's (another backbone,
other weights, another transform), or when data.inputs does not say what the shards hold.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from coir.common.errors import ConfigError
from coir.datasets.shards.manifest import read_manifest
from coir.datasets.shards.spec import MANIFEST

MANIFEST_KEY = "features"  # the manifest block of a feature shard folder
DTYPES = ("float32", "float16")


def array_to_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def array_from_npy(data: bytes) -> np.ndarray:
    """A stored feature array; ValueError when the bytes are not a floating .npy array."""
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"feature array of dtype {array.dtype}, expected float32 or float16")
    return array


def folder_manifests(shards: list[str]) -> dict[Path, dict[str, Any] | None]:
    """The manifest of each folder the shards are in (None where a folder has none)."""
    folders = dict.fromkeys(Path(shard).parent for shard in shards)
    return {folder: read_manifest(folder) if (folder / MANIFEST).is_file() else None for folder in folders}


def identity_difference(stored: str, model: str) -> str:
    """What differs between two identities, for the error message."""
    try:
        there, here = json.loads(stored), json.loads(model)
    except json.JSONDecodeError:
        return f"{stored!r} there, {model!r} here"
    keys = sorted(set(there) | set(here))
    return "; ".join(
        f"{k} {there.get(k)!r} there, {here.get(k)!r} here" for k in keys if there.get(k) != here.get(k)
    )


def check_inputs(shards: list[str], model: Any, inputs: str) -> None:
    """Before training: the shards hold what data.inputs says, and feature shards come from this model's
    frozen image part. ConfigError naming the key and the folder otherwise."""
    manifests = folder_manifests(shards)
    if inputs != "features":
        for folder, manifest in manifests.items():
            if manifest is not None and MANIFEST_KEY in manifest:
                raise ConfigError(
                    f"key 'data.inputs': {folder} holds frozen-part features (coir data features), not "
                    "images; set data.inputs=features"
                )
        return
    frozen = model.frozen_image_features()
    if frozen is None:
        raise ConfigError(
            f"key 'data.inputs': features need a model with a frozen image part; model.family="
            f"{model.family} model.name={model.name} has none with this config (its whole image path trains)"
        )
    for folder, manifest in manifests.items():
        if manifest is None:
            raise ConfigError(
                f"key 'data.shards': {folder} has no {MANIFEST}: feature shards are checked against the "
                "model through the manifest coir data features writes; give its output folder"
            )
        block = manifest.get(MANIFEST_KEY)
        if not isinstance(block, dict):
            raise ConfigError(
                f"key 'data.inputs': {folder / MANIFEST} describes image shards, not features "
                "(make features with coir data features, or set data.inputs=images)"
            )
        if block.get("identity") != frozen.identity:
            raise ConfigError(
                f"key 'data.shards': {folder} holds features of another frozen image part than this "
                f"model's: {identity_difference(str(block.get('identity')), frozen.identity)}; rebuild them "
                "with coir data features and this recipe"
            )

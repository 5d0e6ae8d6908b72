"""The model registry: one spec per family, found through the `coir.models` entry points.

A family is a folder under pipeline/models/ whose spec is registered once in pyproject.toml
(`[project.entry-points."coir.models"]`, name = family). Everything outside the family folders
builds, exports, re-imports and derives models through these functions only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coir.common.config import load_config
from coir.common.errors import ConfigError
from coir.pipeline.models.config import ModelConfig

if TYPE_CHECKING:  # torch stays out of config loading and `coir --help`
    from coir.pipeline.models.base import RetrievalModel

ENTRY_POINT_GROUP = "coir.models"
DEFAULT_FAMILY = "blip"  # a model section without `family` (CASE recipes) means this one


@dataclass(frozen=True)
class FamilySpec:
    name: str
    config_class: type[ModelConfig]
    #: the models of the family (ModelConfig.name values); the first is the default
    models: tuple[str, ...]
    #: a model from its config: random weights, local pretrained weights, or config.init_from
    build: Callable[[Any], RetrievalModel]
    #: write the files besides the weights an export needs (tokenizer, vocabulary) into a folder
    save_assets: Callable[[RetrievalModel, Path], None]
    #: the architecture an export describes (export_config() + the export folder), its weights random
    #: or empty (meta device); load_export loads or assigns the saved ones
    rebuild: Callable[[str, dict[str, Any], Path], RetrievalModel]
    #: single-modality baselines derivable from a trained model without training (name -> model)
    derive: Callable[[RetrievalModel, str], RetrievalModel] | None = None
    baselines: tuple[str, ...] = ()


@functools.cache
def _specs() -> dict[str, FamilySpec]:
    specs: dict[str, FamilySpec] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        spec = entry.load()
        if not isinstance(spec, FamilySpec) or spec.name != entry.name:
            raise TypeError(
                f"entry point {ENTRY_POINT_GROUP}:{entry.name} is not the FamilySpec of that name"
            )
        specs[entry.name] = spec
    return specs


def families() -> tuple[str, ...]:
    return tuple(sorted(_specs()))


def family(name: str) -> FamilySpec:
    specs = _specs()
    if name not in specs:
        raise ConfigError(
            f"key 'model.family': unknown family {name!r} (choose from {', '.join(sorted(specs))})"
        )
    return specs[name]


def family_of(model: Any) -> FamilySpec:
    return family(getattr(model, "family", "") or "?")


def model_config(raw: ModelConfig | Mapping[str, Any]) -> ModelConfig:
    """The family's typed config from a run config's `model` section (a mapping or a dataclass).

    Unknown keys, options of another family and wrong types raise ConfigError naming `model.<key>`.
    """
    if isinstance(raw, ModelConfig):
        spec = family(raw.family)
        if not isinstance(raw, spec.config_class):
            raise ConfigError(f"key 'model.family': {raw.family} expects a {spec.config_class.__name__}")
        config = raw
    else:
        values = dict(raw)
        values.setdefault("family", DEFAULT_FAMILY)
        spec = family(str(values["family"]))
        config = load_config(spec.config_class, base=values, key_prefix="model")
    if not config.name:
        config.name = spec.models[0]
    if config.name not in spec.models:
        raise ConfigError(
            f"key 'model.name': {config.name!r} is not a model of the {spec.name} family "
            f"(choose from {', '.join(spec.models)})"
        )
    return config


def build_model(config: ModelConfig | Mapping[str, Any]) -> RetrievalModel:
    """A model from its config section (see model_config)."""
    config = model_config(config)
    return family(config.family).build(config)


def derive_baseline(model: RetrievalModel, kind: str) -> RetrievalModel:
    """A single-modality baseline (e.g. image-only) from a trained model's weights, in eval mode."""
    spec = family_of(model)
    if spec.derive is None or kind not in spec.baselines:
        offered = ", ".join(spec.baselines) or "none"
        raise ConfigError(f"baseline: the {spec.name} family offers no {kind!r} baseline (offers: {offered})")
    return spec.derive(model, kind).eval()

"""The model section of a run config: the options every family has; each family extends it.

A family's config is a dataclass subclassing ModelConfig (e.g. blip/config.py). The run config
names the family (`model.family`) and is validated against that family's own dataclass, so an
option of another family is an error naming the key (registry.model_config).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

C = TypeVar("C", bound="ModelConfig")


@dataclass
class ModelConfig:
    family: str = ""  # the family in the model registry (blip, artemis, ...)
    name: str = ""  # the model within the family (blip: case | image-only | text-only)
    # a coir export (e.g. LaSCo-pretrained CASE) whose architecture, weights and text encoding
    # start this run; the training options still come from this config (finetuning)
    init_from: str | None = None

    @classmethod
    def from_export(cls: type[C], values: Mapping[str, Any], name: str) -> C:
        """The config an export's "model" section describes (keys this version lacks are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        config = cls(**{k: v for k, v in values.items() if k in known})
        config.name = name
        return config

    def input_paths(self) -> dict[str, str | None]:
        """Config key -> local path this model reads, checked before a run starts."""
        return {"model.init_from": self.init_from}

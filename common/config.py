"""Typed configuration: a dataclass schema, merged with a YAML file and `key.sub=value` overrides.

OmegaConf does the merging and the type checks; this module turns its errors into a ConfigError
that names the offending key (and file), and returns a plain dataclass instance. Every config
in coir (data builds, training, evaluation, cluster defaults) goes through `load_config`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from coir.common.errors import ConfigError, MissingInputError

T = TypeVar("T")


def _describe(error: OmegaConfBaseException, key_prefix: str = "") -> str:
    key = getattr(error, "full_key", None)
    message = str(error).splitlines()[0]
    if key and key_prefix:
        key = f"{key_prefix}.{key}"
    return f"key {key!r}: {message}" if key else message


def load_config(
    schema: type[T],
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    base: dict[str, Any] | None = None,
    key_prefix: str = "",
) -> T:
    """Build `schema` from its defaults, then `base`, then the YAML file, then the overrides.

    Unknown keys and values of the wrong type raise ConfigError naming the key (as
    `<key_prefix>.<key>` when the schema is one section of a larger config).
    """
    merged = OmegaConf.structured(schema)
    sources: list[tuple[str, Any]] = []
    if base:
        sources.append(("defaults", OmegaConf.create(base)))
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise MissingInputError(path, "config file")
        try:
            sources.append((str(path), OmegaConf.load(path)))
        except Exception as error:  # yaml.YAMLError and friends
            raise ConfigError(f"{path}: not valid YAML: {error}") from error
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        try:
            sources.append((f"override {item!r}", OmegaConf.from_dotlist([item])))
        except OmegaConfBaseException as error:
            raise ConfigError(f"override {item!r}: {_describe(error, key_prefix)}") from error
    for origin, source in sources:
        try:
            merged = OmegaConf.merge(merged, source)
        except OmegaConfBaseException as error:
            raise ConfigError(f"{origin}: {_describe(error, key_prefix)}") from error
    try:
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        raise ConfigError(_describe(error, key_prefix)) from error


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, JSON-ready dict of a config dataclass (for manifests, logs and checkpoints)."""
    return dataclasses.asdict(config)


def to_yaml(config: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))

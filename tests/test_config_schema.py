"""The typed-config loader every command uses: defaults <- YAML <- key.sub=value overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from coir.common.config import load_config, to_dict
from coir.common.errors import ConfigError, MissingInputError


@dataclass
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Recipe:
    optim: Optim = field(default_factory=Optim)
    steps: int = 10
    name: str | None = None


def test_yaml_then_overrides_win(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text("steps: 20\noptim:\n  lr: 0.5\n")
    config = load_config(Recipe, path, ["optim.lr=0.25", "name=run1"])
    assert isinstance(config, Recipe) and isinstance(config.optim, Optim)
    assert (config.steps, config.optim.lr, config.name) == (20, 0.25, "run1")
    assert to_dict(config)["optim"]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize(
    ("override", "named"),
    [("optim.lrr=1", "optim.lrr"), ("steps=abc", "steps"), ("nope=1", "nope")],
)
def test_bad_override_names_the_key(override: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(Recipe, overrides=[override])


def test_unknown_key_in_yaml_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  momentum: 0.9\n")
    with pytest.raises(ConfigError) as error:
        load_config(Recipe, path)
    assert "bad.yaml" in str(error.value) and "momentum" in str(error.value)


def test_missing_file_and_malformed_override(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError, match="missing.yaml"):
        load_config(Recipe, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(Recipe, overrides=["steps"])

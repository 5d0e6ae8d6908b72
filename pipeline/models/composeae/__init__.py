"""The ComposeAE family (pipeline/models/composeae/). Registered as `composeae` in pyproject.toml's
`coir.models` entry points."""

from coir.pipeline.models.composeae.build import build, rebuild, save_assets
from coir.pipeline.models.composeae.config import ComposeAEModelConfig
from coir.pipeline.models.registry import FamilySpec

SPEC: FamilySpec = FamilySpec("composeae", ComposeAEModelConfig, ("composeae",), build, save_assets, rebuild)

"""The TIRG family (pipeline/models/tirg/). Registered as `tirg` in pyproject.toml's `coir.models`
entry points."""

from coir.pipeline.models.registry import FamilySpec
from coir.pipeline.models.tirg.build import BUILDERS

SPEC: FamilySpec = BUILDERS.spec("tirg", ("tirg",))

"""The CRN family (pipeline/models/crn/). Registered as `crn` in pyproject.toml's `coir.models`
entry points."""

from coir.pipeline.models.crn.build import BUILDERS
from coir.pipeline.models.registry import FamilySpec

SPEC: FamilySpec = BUILDERS.spec("crn", ("crn",))

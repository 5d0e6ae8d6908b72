"""The MANME family (pipeline/models/manme/): ARTEMIS's EM + IS at three ResNet levels with a
mutual-exclusion constraint between the preserved and the modified attention. Registered as `manme`
in pyproject.toml's `coir.models` entry points."""

from coir.pipeline.models.manme.build import BUILDERS

SPEC = BUILDERS.spec("manme", models=("manme",))

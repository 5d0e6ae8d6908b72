"""The ARTEMIS family (pipeline/models/artemis/): the base of CMAP and MANME. Registered as
`artemis` in pyproject.toml's `coir.models` entry points."""

from coir.pipeline.models.artemis.build import build, rebuild, save_assets
from coir.pipeline.models.artemis.config import ArtemisModelConfig
from coir.pipeline.models.registry import FamilySpec

SPEC = FamilySpec(
    name="artemis",
    config_class=ArtemisModelConfig,
    models=("artemis",),
    build=build,
    save_assets=save_assets,
    rebuild=rebuild,
)

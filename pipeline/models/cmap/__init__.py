"""The CMAP family (pipeline/models/cmap/): ARTEMIS's EM + IS at three ResNet levels with a
cross-level interaction and a self-contrastive preservation loss. Registered as `cmap` in
pyproject.toml's `coir.models` entry points."""

from coir.pipeline.models.cmap.build import BUILDERS

SPEC = BUILDERS.spec("cmap", models=("cmap",))

"""Building CRN models: random or local Swin weights, a coir export to start from, an export."""

from __future__ import annotations

from coir.pipeline.models.components.word_model import WORD_ARCHITECTURE, word_family_builders
from coir.pipeline.models.crn.config import CrnModelConfig
from coir.pipeline.models.crn.model import Crn

# besides the word options: the Swin's own arguments, the map size and what enters the aggregation
ARCHITECTURE = (*WORD_ARCHITECTURE, "backbone_args", "map_dim", "aggregation_stages", "image_size")
BUILDERS = word_family_builders(Crn, CrnModelConfig, ARCHITECTURE)
build, save_assets, rebuild = BUILDERS.build, BUILDERS.save_assets, BUILDERS.rebuild

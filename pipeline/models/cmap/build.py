"""Building CMAP models: random or local weights, a coir export to start from, an export."""

from __future__ import annotations

from coir.pipeline.models.cmap.config import CmapModelConfig
from coir.pipeline.models.cmap.model import Cmap
from coir.pipeline.models.components.word_model import WORD_ARCHITECTURE, word_family_builders

BUILDERS = word_family_builders(Cmap, CmapModelConfig, (*WORD_ARCHITECTURE, "cross_level", "fusion_gate"))
build, save_assets, rebuild = BUILDERS.build, BUILDERS.save_assets, BUILDERS.rebuild

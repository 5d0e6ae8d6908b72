"""Building TIRG models: random or local weights, a coir export to start from, an export."""

from __future__ import annotations

from coir.pipeline.models.components.word_model import WORD_ARCHITECTURE, word_family_builders
from coir.pipeline.models.tirg.config import TirgModelConfig
from coir.pipeline.models.tirg.model import Tirg

BUILDERS = word_family_builders(Tirg, TirgModelConfig, WORD_ARCHITECTURE)
build, save_assets, rebuild = BUILDERS.build, BUILDERS.save_assets, BUILDERS.rebuild

"""Building MANME models: random or local weights, a coir export to start from, an export."""

from __future__ import annotations

from coir.pipeline.models.components.word_model import WORD_ARCHITECTURE, word_family_builders
from coir.pipeline.models.manme.config import ManmeModelConfig
from coir.pipeline.models.manme.model import Manme

BUILDERS = word_family_builders(Manme, ManmeModelConfig, (*WORD_ARCHITECTURE, "attention"))
build, save_assets, rebuild = BUILDERS.build, BUILDERS.save_assets, BUILDERS.rebuild

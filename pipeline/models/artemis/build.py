"""Building ARTEMIS models: random or local weights, a coir export to start from, an export."""

from __future__ import annotations

from coir.pipeline.models.artemis.config import ArtemisModelConfig
from coir.pipeline.models.artemis.model import Artemis
from coir.pipeline.models.components.word_model import WORD_ARCHITECTURE, word_family_builders

BUILDERS = word_family_builders(Artemis, ArtemisModelConfig, (*WORD_ARCHITECTURE, "pooling"))
build, save_assets, rebuild = BUILDERS.build, BUILDERS.save_assets, BUILDERS.rebuild

"""Options of the ARTEMIS family (Delmas et al., ICLR 2022; defaults checked against naver/artemis)."""

from __future__ import annotations

from dataclasses import dataclass

from coir.pipeline.models.components.word_model import WordModelConfig


@dataclass
class ArtemisModelConfig(WordModelConfig):
    family: str = "artemis"
    name: str = "artemis"
    pooling: str = "gem"  # gem (p = 3, the reference's image encoder) | avg (CIRR's released features)

"""The synthetic world: procedurally rendered scenes and garments written in the real formats
(COCO 2014 + VQA 2.0, CIRR, CIRCO, FashionIQ, Shoes, Fashion200k), with render-side truth and
modality-redundancy labels (none for Shoes and Fashion200k).

    from coir.datasets.synth import build_world
    summary = build_world(Path("runs/world"), seed=0, scale="tiny")   # == world.json

Modules: render (PIL drawing), scenes (families of near-duplicates), labels (redundancy labels
from the truth), vqa_world / cirr_world / circo_world / fashion_world / shoes_world / fashion200k_world (one
benchmark each; shoe_render draws the shoes), build (scales, build_world, world.json), cli (`coir data
synth`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCALES", "ScaleConfig", "build_world"]


def __getattr__(name: str) -> Any:  # lazy: `coir --help` imports the cli module without PIL
    if name in __all__:
        from coir.datasets.synth import build

        return getattr(build, name)
    raise AttributeError(name)

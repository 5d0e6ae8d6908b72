"""The BLIP family: CASE (cross-attention early fusion on a BLIP backbone) and its image-only, text-only
and sum (l2n of the unimodal embeddings' sum) baselines. Registered as `blip` in pyproject.toml's
`coir.models` entry points."""

from coir.pipeline.models.blip.build import BASELINES, MODELS, build, derive_baseline, rebuild, save_assets
from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.registry import FamilySpec

SPEC = FamilySpec(
    name="blip",
    config_class=BlipModelConfig,
    models=tuple(MODELS),
    build=build,
    save_assets=save_assets,
    rebuild=rebuild,
    derive=derive_baseline,
    baselines=BASELINES,
)

"""The CLIP4Cir family (pipeline/models/clip4cir/): open_clip features fused by the learned Combiner, or
summed (zero-shot). Registered as `clip4cir` in pyproject.toml's `coir.models` entry points."""

from coir.pipeline.models.clip4cir.build import build, derive_baseline, rebuild, save_assets
from coir.pipeline.models.clip4cir.config import Clip4CirModelConfig
from coir.pipeline.models.clip4cir.model import BASELINE_MODELS, MODELS
from coir.pipeline.models.registry import FamilySpec

SPEC = FamilySpec(
    name="clip4cir",
    config_class=Clip4CirModelConfig,
    models=tuple(MODELS),
    build=build,
    save_assets=save_assets,
    rebuild=rebuild,
    derive=derive_baseline,
    baselines=tuple(BASELINE_MODELS),
)

"""The Pic2Word family (pipeline/models/pic2word/): a frozen open_clip CLIP and the mapping network that
turns the reference image into a pseudo word of the prompt; zero-shot, trained on images alone.
Registered as `pic2word` in pyproject.toml's `coir.models` entry points."""

from coir.pipeline.models.pic2word.build import BASELINES, build, derive_baseline, rebuild, save_assets
from coir.pipeline.models.pic2word.config import Pic2WordModelConfig
from coir.pipeline.models.pic2word.model import MODELS
from coir.pipeline.models.registry import FamilySpec

SPEC = FamilySpec(
    name="pic2word",
    config_class=Pic2WordModelConfig,
    models=tuple(MODELS),
    build=build,
    save_assets=save_assets,
    rebuild=rebuild,
    derive=derive_baseline,
    baselines=BASELINES,
)

"""What the learning tests share: a recipe's model at the trainer's initialisation, exported untrained,
and the FashionIQ-style evaluation of an export (tests/test_artemis_learns.py, test_multilevel_learns.py)."""

from __future__ import annotations

from pathlib import Path


def untrained_export(recipe: Path, overrides: list[str], out: Path) -> Path:
    """The recipe's model at the trainer's initialisation (same seed), exported untrained."""
    from coir.pipeline import engine
    from coir.pipeline.config import load_train_config
    from coir.pipeline.models.export import save_export
    from coir.pipeline.models.registry import build_model

    config = load_train_config(recipe, overrides)
    engine._seed_all(config.seed)
    return save_export(build_model(config.model), out)


def evaluate_fashioniq(export: Path, fashioniq: Path, caption_template: str) -> dict:
    """The results fragment of `coir eval --benchmark fashioniq` on the export (CPU, no cache)."""
    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig

    options = {"fashioniq": {"caption_template": caption_template}}
    config = EvalConfig(
        checkpoint=str(export), benchmark="fashioniq", data_root=str(fashioniq), device="cpu",
        num_workers=0, cache=False, pictures=False, options=options,
    )  # fmt: skip
    return evaluate(export, config).fragment

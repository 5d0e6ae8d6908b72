"""What the learning tests share: a recipe's model at the trainer's initialisation, exported untrained,
and the evaluation of an export on a benchmark (tests/test_artemis_learns.py, test_multilevel_learns.py)."""

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


def evaluate_export(
    export: Path, benchmark: str, root: Path, split: str = "val", options: dict | None = None
) -> dict:
    """The results fragment of `coir eval --benchmark BENCHMARK` on the export (CPU, no cache)."""
    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig

    config = EvalConfig(
        checkpoint=str(export), benchmark=benchmark, split=split, data_root=str(root), device="cpu",
        num_workers=0, cache=False, pictures=False, options={benchmark: options} if options else {},
    )  # fmt: skip
    return evaluate(export, config).fragment


def evaluate_fashioniq(export: Path, fashioniq: Path, caption_template: str) -> dict:
    """evaluate_export on FashionIQ val with the word-vocabulary caption template."""
    return evaluate_export(export, "fashioniq", fashioniq, "val", {"caption_template": caption_template})

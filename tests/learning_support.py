"""What the learning tests share (tests/test_*_learns.py): a short `coir train` of a recipe, the recipe's
model at the trainer's initialisation exported untrained, and the evaluation of an export on a benchmark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def train_tiny(recipe: Path, shards: list[Path], run: Path, steps: int, *overrides: str) -> Path:
    """`coir train RECIPE` in a subprocess for `steps` steps of 16 on `shards` (one worker's buffer of 100,
    a 5-step warm-up, no checkpoint but the final one); returns the run's export."""
    settings = [
        f"data.shards=[{','.join(map(str, shards))}]", f"run_dir={run}", "data.batch_size=16",
        "data.samples_per_epoch_per_worker=160", "data.shuffle_buffer=100", "data.shuffle_initial=50",
        f"optim.total_steps={steps}", "optim.warmup_steps=5", "checkpoint.every_steps=0",
        "logging.progress_bar=false", "logging.tensorboard=false", *overrides,
    ]  # fmt: skip
    command = [sys.executable, "-m", "coir.pipeline.train_cli", str(recipe), *settings]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return run / "export"


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

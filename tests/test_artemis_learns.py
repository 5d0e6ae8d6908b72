"""ARTEMIS end to end on the tiny synthetic FashionIQ-style world, through the commands a user runs:
`coir data vocab`, `coir data shards fashioniq` (captions joined with <and>), `coir train` with the
shipped tiny recipe, then `coir eval` of the trained export against its own untrained initialisation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lasco_fixture import run_command
from synth_fixture import built_world

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "methods" / "artemis_tiny.yaml"
TEMPLATE = "{c1} <and> {c2}"
SMALL = ["model.image_size=32", "model.resize=32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    world = built_world(tmp_path_factory)
    work = tmp_path_factory.mktemp("artemis")
    fashioniq = world / "fashioniq"
    vocab, shards = work / "vocab.json", work / "shards"
    assert (
        run_command(
            "coir.datasets.vocab_cli",
            ["--dataset", "fashioniq", "--root", str(fashioniq), "--out", str(vocab)],
        )
        == 0
    )
    argv = ["fashioniq", "--root", str(fashioniq), "--split", "train", "--out", str(shards), "--size", "32"]
    assert (
        run_command(
            "coir.datasets.shards.cli", [*argv, "--set", f"fashioniq_template='{TEMPLATE}'", "--no-progress"]
        )
        == 0
    )
    overrides = [
        f"model.vocabulary={vocab}", f"data.shards=[{shards / 'triplets'}]", f"run_dir={work / 'run'}",
        *SMALL, "data.batch_size=16", "data.samples_per_epoch_per_worker=160", "data.shuffle_buffer=100",
        "data.shuffle_initial=50", "optim.total_steps=80", "optim.warmup_steps=5", "checkpoint.every_steps=0",
        "logging.progress_bar=false", "logging.tensorboard=false",
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "coir.pipeline.train_cli", str(RECIPE), *overrides],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    untrained = _untrained_export(vocab, work / "untrained")
    return fashioniq, work / "run" / "export", untrained


def _untrained_export(vocab: Path, out: Path) -> Path:
    """The recipe's model at the trainer's initialisation (same seed), exported untrained."""
    from coir.pipeline import engine
    from coir.pipeline.config import load_train_config
    from coir.pipeline.models.export import save_export
    from coir.pipeline.models.registry import build_model

    config = load_train_config(RECIPE, [f"model.vocabulary={vocab}", *SMALL])
    engine._seed_all(config.seed)
    return save_export(build_model(config.model), out)


def _evaluate(export: Path, fashioniq: Path) -> dict:
    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig

    config = EvalConfig(
        checkpoint=str(export), benchmark="fashioniq", data_root=str(fashioniq), device="cpu",
        num_workers=0, cache=False, pictures=False, options={"fashioniq": {"caption_template": TEMPLATE}},
    )  # fmt: skip
    return evaluate(export, config).fragment


def test_trained_artemis_beats_its_initialisation_in_every_category(trained):
    fashioniq, export, untrained = trained
    after, before = _evaluate(export, fashioniq), _evaluate(untrained, fashioniq)
    meta = json.loads((export / "coir_model.json").read_text())
    assert (meta["family"], meta["name"]) == ("artemis", "artemis")
    for category in ("dress", "shirt", "toptee"):
        key = f"fashioniq-{category}/val"
        trained_r10, initial_r10 = after[key]["artemis"]["R@10"], before[key]["artemis"]["R@10"]
        assert trained_r10 >= initial_r10 + 15, (category, trained_r10, initial_r10)
        assert after[key]["artemis"]["R@50"] >= before[key]["artemis"]["R@50"]
    assert after["fashioniq/val"]["artemis"]["R@10"] >= 75

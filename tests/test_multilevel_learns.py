"""CMAP and MANME end to end on the tiny synthetic FashionIQ-style world, through the commands a user
runs: `coir data vocab`, `coir data shards fashioniq` (captions joined with <and>), `coir train` with
the family's shipped tiny recipe, then `coir eval` of the trained export against its own untrained
initialisation, category by category."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import multilevel_registry  # registers the families in this process (and, run as a script, in children)
import pytest
from lasco_fixture import run_command
from learning_support import evaluate_fashioniq, untrained_export
from synth_fixture import built_world

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "{c1} <and> {c2}"
SMALL = ["model.image_size=32", "model.resize=32"]
CATEGORIES = ("dress", "shirt", "toptee")


def recipe(family: str) -> Path:
    return REPO / "configs" / "methods" / f"{family}_tiny.yaml"


@pytest.fixture(scope="module")
def fashioniq_data(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(the FashionIQ-style root, its word vocabulary, its training triplet shards)."""
    fashioniq = built_world(tmp_path_factory) / "fashioniq"
    work = tmp_path_factory.mktemp("multilevel_data")
    vocab, shards = work / "vocab.json", work / "shards"
    argv = ["--dataset", "fashioniq", "--root", str(fashioniq), "--out", str(vocab)]
    assert run_command("coir.datasets.vocab_cli", argv) == 0
    argv = ["fashioniq", "--root", str(fashioniq), "--split", "train", "--out", str(shards), "--size", "32"]
    argv += ["--set", f"fashioniq_template='{TEMPLATE}'", "--no-progress"]
    assert run_command("coir.datasets.shards.cli", argv) == 0
    return fashioniq, vocab, shards / "triplets"


def _train(family: str, vocab: Path, shards: Path, run: Path) -> Path:
    overrides = [
        f"model.vocabulary={vocab}", f"data.shards=[{shards}]", f"run_dir={run}", *SMALL,
        "data.batch_size=16", "data.samples_per_epoch_per_worker=160", "data.shuffle_buffer=100",
        "data.shuffle_initial=50", "optim.total_steps=60", "optim.warmup_steps=5", "checkpoint.every_steps=0",
        "logging.progress_bar=false", "logging.tensorboard=false",
    ]  # fmt: skip
    command = [sys.executable, multilevel_registry.__file__, "coir.pipeline.train_cli", str(recipe(family))]
    result = subprocess.run([*command, *overrides], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return run / "export"


@pytest.mark.parametrize("family", ["cmap", "manme"])
def test_trained_multilevel_model_beats_its_initialisation_in_every_category(
    family, fashioniq_data, tmp_path
):
    fashioniq, vocab, shards = fashioniq_data
    export = _train(family, vocab, shards, tmp_path / "run")
    untrained = untrained_export(
        recipe(family), [f"model.vocabulary={vocab}", *SMALL], tmp_path / "untrained"
    )
    after, before = (evaluate_fashioniq(e, fashioniq, TEMPLATE) for e in (export, untrained))
    meta = json.loads((export / "coir_model.json").read_text())
    assert (meta["family"], meta["name"]) == (family, family)
    for category in CATEGORIES:
        trained, initial = (
            after[f"fashioniq-{category}/val"][family],
            before[f"fashioniq-{category}/val"][family],
        )
        assert trained["R@10"] >= initial["R@10"] + 15, (category, trained, initial)
        assert trained["R@50"] >= initial["R@50"], (category, trained, initial)
    assert after["fashioniq/val"][family]["R@10"] >= 75

"""CLIP4Cir end to end on the tiny synthetic FashionIQ-style world, through the commands a user runs:
`coir data shards fashioniq` (captions joined with "and", the reference's), `coir train` with the shipped
tiny recipe (a random 2-layer open_clip, tuned, and the Combiner), then `coir eval` of the trained
export against its own untrained initialisation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lasco_fixture import run_command
from learning_support import evaluate_fashioniq, untrained_export
from synth_fixture import built_world

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "methods" / "clip4cir_tiny.yaml"
TEMPLATE = "{c1} and {c2}"


def test_trained_clip4cir_beats_its_initialisation_in_every_category(tmp_path_factory, tmp_path):
    world = built_world(tmp_path_factory)
    fashioniq, shards = world / "fashioniq", tmp_path / "shards"
    argv = ["fashioniq", "--root", str(fashioniq), "--split", "train", "--out", str(shards), "--size", "32"]
    assert run_command("coir.datasets.shards.cli", [*argv, "--no-progress"]) == 0
    overrides = [
        f"data.shards=[{shards / 'triplets'}]", f"run_dir={tmp_path / 'run'}", "data.batch_size=16",
        "data.samples_per_epoch_per_worker=160", "data.shuffle_buffer=100", "data.shuffle_initial=50",
        "optim.total_steps=80", "optim.warmup_steps=5", "checkpoint.every_steps=0",
        "logging.progress_bar=false", "logging.tensorboard=false",
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "coir.pipeline.train_cli", str(RECIPE), *overrides],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    export = tmp_path / "run" / "export"
    meta = json.loads((export / "coir_model.json").read_text())
    assert (meta["family"], meta["config"]["model"]["mode"]) == ("clip4cir", "combiner")

    untrained = untrained_export(RECIPE, [], tmp_path / "untrained")
    after, before = (evaluate_fashioniq(e, fashioniq, TEMPLATE) for e in (export, untrained))
    for category in ("dress", "shirt", "toptee"):
        key = f"fashioniq-{category}/val"
        trained, initial = after[key]["clip4cir"], before[key]["clip4cir"]
        print(f"clip4cir {key}: untrained {initial}, trained {trained}")
        assert trained["R@10"] >= initial["R@10"] + 15 and trained["R@50"] >= initial["R@50"], category
    assert after["fashioniq/val"]["clip4cir"]["R@10"] >= 80

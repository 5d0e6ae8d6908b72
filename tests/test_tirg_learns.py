"""TIRG end to end on the tiny synthetic Fashion200k-style world, through the commands a user runs:
`coir data vocab --tokenizer tirg`, `coir data shards fashion200k`, `coir train` with the shipped tiny
recipe, then `coir eval` of the trained export against its own untrained initialisation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lasco_fixture import run_command
from learning_support import evaluate_export, untrained_export
from synth_fixture import built_world

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "methods" / "tirg_tiny.yaml"
SMALL = ["model.image_size=32", "model.resize=32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    world = built_world(tmp_path_factory)
    work = tmp_path_factory.mktemp("tirg")
    f200k = world / "fashion200k"
    vocab, shards = work / "vocab.json", work / "shards"
    argv = ["--dataset", "fashion200k", "--root", str(f200k), "--tokenizer", "tirg", "--out", str(vocab)]
    assert run_command("coir.datasets.vocab_cli", argv) == 0
    argv = ["fashion200k", "--root", str(f200k), "--split", "train", "--out", str(shards), "--size", "32"]
    assert run_command("coir.datasets.shards.cli", [*argv, "--pairs-per-image", "2", "--no-progress"]) == 0
    overrides = [
        f"model.vocabulary={vocab}", f"data.shards=[{shards / 'triplets'}]", f"run_dir={work / 'run'}",
        *SMALL, "data.batch_size=16", "data.samples_per_epoch_per_worker=160", "data.shuffle_buffer=100",
        "data.shuffle_initial=50", "optim.total_steps=50", "optim.warmup_steps=5", "checkpoint.every_steps=0",
        "logging.progress_bar=false", "logging.tensorboard=false",
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "coir.pipeline.train_cli", str(RECIPE), *overrides],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    untrained = untrained_export(RECIPE, [f"model.vocabulary={vocab}", *SMALL], work / "untrained")
    return f200k, vocab, work / "run" / "export", untrained


def test_tirg_vocabulary_is_tirgs_own(trained):
    _, vocab, _, _ = trained
    data = json.loads(vocab.read_text())
    words = data["words"]
    assert data["tokenizer"] == "tirg" and words[0] == "<UNK>"
    assert words[1:] == sorted(words[1:]) and all(w.isascii() and w.isalnum() for w in words[1:])


def test_trained_tirg_beats_its_initialisation_on_fashion200k(trained):
    f200k, _, export, untrained = trained
    meta = json.loads((export / "coir_model.json").read_text())
    assert (meta["family"], meta["name"]) == ("tirg", "tirg")
    trained_r, initial = (
        evaluate_export(e, "fashion200k", f200k, "test")["fashion200k/test"]["tirg"]
        for e in (export, untrained)
    )
    print(f"tirg fashion200k: untrained {initial}, trained {trained_r}")
    assert trained_r["R@10"] >= initial["R@10"] + 10 and trained_r["R@50"] >= initial["R@50"], (
        trained_r,
        initial,
    )

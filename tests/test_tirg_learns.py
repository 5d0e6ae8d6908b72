"""TIRG end to end on the tiny synthetic Fashion200k-style world, through the commands a user runs:
`coir data vocab --tokenizer tirg`, `coir data shards fashion200k`, `coir train` with the shipped tiny
recipe, then `coir eval` of the trained export against its own untrained initialisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lasco_fixture import run_command
from learning_support import evaluate_export, train_tiny, untrained_export
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
    train_tiny(RECIPE, [shards / "triplets"], work / "run", 50, f"model.vocabulary={vocab}", *SMALL)
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

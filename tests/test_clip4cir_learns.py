"""CLIP4Cir end to end on the tiny synthetic FashionIQ-style world, through the commands a user runs:
`coir data shards fashioniq` (captions joined with "and", the reference's), `coir train` with the shipped
tiny recipe (a random 2-layer open_clip, tuned, and the Combiner), then `coir eval` of the trained
export against its own untrained initialisation."""

from __future__ import annotations

import json
from pathlib import Path

from lasco_fixture import run_command
from learning_support import evaluate_fashioniq, train_tiny, untrained_export
from synth_fixture import built_world

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "methods" / "clip4cir_tiny.yaml"
TEMPLATE = "{c1} and {c2}"


def test_trained_clip4cir_beats_its_initialisation_in_every_category(tmp_path_factory, tmp_path):
    world = built_world(tmp_path_factory)
    fashioniq, shards = world / "fashioniq", tmp_path / "shards"
    argv = ["fashioniq", "--root", str(fashioniq), "--split", "train", "--out", str(shards), "--size", "32"]
    assert run_command("coir.datasets.shards.cli", [*argv, "--no-progress"]) == 0
    export = train_tiny(RECIPE, [shards / "triplets"], tmp_path / "run", 80)
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

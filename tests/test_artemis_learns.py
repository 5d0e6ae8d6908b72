"""ARTEMIS end to end on the tiny synthetic FashionIQ-style world, through the commands a user runs:
`coir data vocab`, `coir data shards fashioniq` (captions joined with <and>), `coir train` with the
shipped tiny recipe, then `coir eval` of the trained export against its own untrained initialisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lasco_fixture import run_command
from learning_support import evaluate_fashioniq, train_tiny, untrained_export
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
    train_tiny(RECIPE, [shards / "triplets"], work / "run", 80, f"model.vocabulary={vocab}", *SMALL)
    untrained = untrained_export(RECIPE, [f"model.vocabulary={vocab}", *SMALL], work / "untrained")
    return fashioniq, work / "run" / "export", untrained


def test_trained_artemis_beats_its_initialisation_in_every_category(trained):
    fashioniq, export, untrained = trained
    after, before = (evaluate_fashioniq(e, fashioniq, TEMPLATE) for e in (export, untrained))
    meta = json.loads((export / "coir_model.json").read_text())
    assert (meta["family"], meta["name"]) == ("artemis", "artemis")
    for category in ("dress", "shirt", "toptee"):
        key = f"fashioniq-{category}/val"
        trained_r10, initial_r10 = after[key]["artemis"]["R@10"], before[key]["artemis"]["R@10"]
        assert trained_r10 >= initial_r10 + 15, (category, trained_r10, initial_r10)
        assert after[key]["artemis"]["R@50"] >= before[key]["artemis"]["R@50"]
    assert after["fashioniq/val"]["artemis"]["R@10"] >= 75

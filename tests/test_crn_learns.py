"""CRN end to end on the tiny synthetic FashionIQ-style world, through the commands a user runs:
`coir data vocab --tokenizer tirg`, `coir data shards fashioniq` (the reference's caption template),
`coir train` with the shipped tiny recipe, then `coir eval` of the trained export against its own
untrained initialisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lasco_fixture import run_command
from learning_support import evaluate_fashioniq, train_tiny, untrained_export
from synth_fixture import built_world

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "methods" / "crn_tiny.yaml"
TEMPLATE = "<BOS> {c1} <AND> {c2} <EOS>"  # yan9qu/crn datasets.py concat_text
SMALL = ["model.image_size=32", "model.resize=32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    world = built_world(tmp_path_factory)
    work = tmp_path_factory.mktemp("crn")
    fashioniq = world / "fashioniq"
    vocab, shards = work / "vocab.json", work / "shards"
    argv = ["--dataset", "fashioniq", "--root", str(fashioniq), "--tokenizer", "tirg", "--out", str(vocab)]
    assert run_command("coir.datasets.vocab_cli", argv) == 0
    argv = ["fashioniq", "--root", str(fashioniq), "--split", "train", "--out", str(shards), "--size", "32"]
    argv += ["--set", f"fashioniq_template='{TEMPLATE}'", "--no-progress"]
    assert run_command("coir.datasets.shards.cli", argv) == 0
    train_tiny(RECIPE, [shards / "triplets"], work / "run", 50, f"model.vocabulary={vocab}", *SMALL)
    untrained = untrained_export(RECIPE, [f"model.vocabulary={vocab}", *SMALL], work / "untrained")
    return fashioniq, work / "run" / "export", untrained


def test_trained_crn_beats_its_initialisation_on_fashioniq(trained):
    fashioniq, export, untrained = trained
    meta = json.loads((export / "coir_model.json").read_text())
    assert (meta["family"], meta["name"]) == ("crn", "crn")
    after, before = (evaluate_fashioniq(e, fashioniq, TEMPLATE) for e in (export, untrained))
    summary = {k: (before[k]["crn"]["R@10"], after[k]["crn"]["R@10"]) for k in after}
    print(f"crn fashioniq R@10 (untrained, trained): {summary}")
    trained_r, initial = after["fashioniq/val"]["crn"], before["fashioniq/val"]["crn"]
    assert trained_r["R@10"] >= initial["R@10"] + 15, (trained_r, initial)
    assert trained_r["R@50"] >= initial["R@50"], (trained_r, initial)

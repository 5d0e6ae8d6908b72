"""ComposeAE end to end on the tiny synthetic Fashion200k-style world with the complete text query (the
target's description, as the published runs): `coir data shards fashion200k --fashion200k-text
target_description`, `coir train` with the shipped tiny recipe and a tiny random BERT written here, then
`coir eval --fashion200k-text target_description` of the trained export against its own untrained
initialisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from composeae_support import tiny_bert
from lasco_fixture import run_command
from learning_support import evaluate_export, train_tiny, untrained_export
from synth_fixture import built_world

from coir.datasets.fashion200k import read_fashion200k_images

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "methods" / "composeae_tiny.yaml"
SMALL = ["model.image_size=32", "model.resize=32"]
COMPLETE = {"fashion200k_text": "target_description"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    world = built_world(tmp_path_factory)
    work = tmp_path_factory.mktemp("composeae")
    f200k = world / "fashion200k"
    descriptions = [
        im.description for split in ("train", "test") for im in read_fashion200k_images(f200k, split)
    ]
    bert = tiny_bert(work / "bert", descriptions, hidden=32)
    shards = work / "shards"
    argv = ["fashion200k", "--root", str(f200k), "--split", "train", "--out", str(shards), "--size", "32"]
    argv += ["--pairs-per-image", "2", "--fashion200k-text", "target_description", "--no-progress"]
    assert run_command("coir.datasets.shards.cli", argv) == 0
    overrides = [f"model.text_model={bert}", *SMALL]
    train_tiny(RECIPE, [shards / "triplets"], work / "run", 30, *overrides)
    untrained = untrained_export(RECIPE, overrides, work / "untrained")
    return f200k, shards, work / "run" / "export", untrained


def test_shards_carry_the_target_description_and_record_the_choice(trained):
    f200k, shards, _, _ = trained
    manifest = json.loads((shards / "triplets" / "manifest.json").read_text())
    assert manifest["config"]["fashion200k_text"] == "target_description"
    import pyarrow.parquet as pq

    rows = pq.read_table(shards / "triplets" / "index.parquet").to_pylist()
    descriptions = {im.path: im.description for im in read_fashion200k_images(f200k, "train")}
    assert rows and all(row["text"] == descriptions[row["target"]] for row in rows)
    assert not any(row["text"].startswith("replace ") for row in rows)


def test_trained_composeae_beats_its_initialisation_on_fashion200k(trained):
    f200k, _, export, untrained = trained
    meta = json.loads((export / "coir_model.json").read_text())
    assert (meta["family"], meta["name"]) == ("composeae", "composeae")
    assert (export / "text_model" / "config.json").is_file()
    trained_r, initial = (
        evaluate_export(e, "fashion200k", f200k, "test", COMPLETE)["fashion200k/test"]["composeae"]
        for e in (export, untrained)
    )
    print(f"composeae fashion200k: untrained {initial}, trained {trained_r}")
    assert trained_r["R@10"] >= initial["R@10"] + 10 and trained_r["R@50"] >= initial["R@50"], (
        trained_r,
        initial,
    )

"""CMAP and MANME end to end on the tiny synthetic world, through the commands a user runs: `coir data
shards` for the FashionIQ- (captions joined with <and>), Shoes- and Fashion200k-style training splits,
one word vocabulary of their training captions, `coir train` with the family's shipped tiny recipe on
the three shard folders together, then `coir eval` of the trained export against its own untrained
initialisation on each benchmark (FashionIQ category by category)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lasco_fixture import run_command
from learning_support import evaluate_export, evaluate_fashioniq, train_tiny, untrained_export
from synth_fixture import built_world

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "{c1} <and> {c2}"
SMALL = ["model.image_size=32", "model.resize=32"]
CATEGORIES = ("dress", "shirt", "toptee")


def recipe(family: str) -> Path:
    return REPO / "configs" / "methods" / f"{family}_tiny.yaml"


def _shards(dataset: str, root: Path, out: Path, *extra: str) -> Path:
    argv = [dataset, "--root", str(root), "--split", "train", "--out", str(out), "--size", "32"]
    assert run_command("coir.datasets.shards.cli", [*argv, *extra, "--no-progress"]) == 0
    return out / "triplets"


@pytest.fixture(scope="module")
def training_data(tmp_path_factory) -> tuple[Path, Path, list[Path]]:
    """(the synthetic world, one word vocabulary of the three training splits, their triplet shards)."""
    from coir.datasets.vocab import LEADING_WORDS, Vocabulary, dataset_captions

    world = built_world(tmp_path_factory)
    work = tmp_path_factory.mktemp("multilevel_data")
    captions = [c for d in ("fashioniq", "shoes", "fashion200k") for c in dataset_captions(d, world / d)]
    vocab = Vocabulary.from_captions(captions, leading=LEADING_WORDS["fashion200k"]).save(work / "vocab.json")
    shards = [
        _shards("fashioniq", world / "fashioniq", work / "fiq", "--set", f"fashioniq_template='{TEMPLATE}'"),
        _shards("shoes", world / "shoes", work / "shoes"),
        _shards("fashion200k", world / "fashion200k", work / "f200k", "--pairs-per-image", "2"),
    ]
    return world, vocab, shards


@pytest.mark.parametrize("family", ["cmap", "manme"])
def test_trained_multilevel_model_beats_its_initialisation_on_every_benchmark(
    family, training_data, tmp_path
):
    world, vocab, shards = training_data
    export = train_tiny(recipe(family), shards, tmp_path / "run", 120, f"model.vocabulary={vocab}", *SMALL)
    untrained = untrained_export(
        recipe(family), [f"model.vocabulary={vocab}", *SMALL], tmp_path / "untrained"
    )
    meta = json.loads((export / "coir_model.json").read_text())
    assert (meta["family"], meta["name"]) == (family, family)

    after, before = (evaluate_fashioniq(e, world / "fashioniq", TEMPLATE) for e in (export, untrained))
    for category in CATEGORIES:  # better in every category, by 15 points of R@10 over the three
        trained, initial = (r[f"fashioniq-{category}/val"][family] for r in (after, before))
        print(f"{family} fashioniq-{category}: untrained {initial}, trained {trained}")
        assert trained["R@10"] > initial["R@10"] and trained["R@50"] >= initial["R@50"], (category, trained)
    trained, initial = (r["fashioniq/val"][family] for r in (after, before))
    assert trained["R@10"] >= initial["R@10"] + 15, (trained, initial)

    # Shoes: 24 queries over a 24-image gallery, so R@10 and R@50 sit near 100 from the start; one query
    # at one cutoff moves the average by 1.4 points. Three such gains at least, and no measure worse (R@1
    # alone may tie, as it does for MANME on some CPUs, whose rounding changes a few training steps)
    trained, initial = (
        evaluate_export(e, "shoes", world / "shoes", "test")["shoes/test"][family]
        for e in (export, untrained)
    )
    print(f"{family} shoes: untrained {initial}, trained {trained}")
    assert trained["avg"] >= initial["avg"] + 4, (trained, initial)
    assert all(trained[k] >= initial[k] for k in ("R@1", "R@10", "R@50")), (trained, initial)
    f200k = world / "fashion200k"
    trained, initial = (
        evaluate_export(e, "fashion200k", f200k, "test")["fashion200k/test"][family]
        for e in (export, untrained)
    )
    print(f"{family} fashion200k: untrained {initial}, trained {trained}")
    assert trained["R@10"] >= initial["R@10"] + 10 and trained["R@50"] >= initial["R@50"], (trained, initial)

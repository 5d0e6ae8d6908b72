"""The synthetic MIT-States twin through the commands a user runs: its folders, `coir data shards
mit_states` (train draws and test queries, round trip), `coir data vocab --dataset mit_states`, and
`coir eval --benchmark mit_states` of a tiny exported ARTEMIS."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lasco_fixture import folder_bytes, run_command, tar_samples
from PIL import Image
from synth_fixture import built_world

from coir.common import fields
from coir.datasets.mit_states import TEST_NOUNS, draw_training_pairs, read_mit_states_images
from coir.datasets.synth.mit_states_world import SKIPPED_FOLDERS, TEST_OBJECTS, TRAIN_OBJECTS
from coir.datasets.synth.render import COLOURS
from coir.datasets.vocab import SPECIAL_TOKENS, Vocabulary

SHARDS = "coir.datasets.shards.cli"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return built_world(tmp_path_factory) / "mit_states"


def samples(folder: Path) -> list[dict[str, bytes]]:
    return [s for p in sorted(folder.glob("*.tar")) for s in tar_samples(p)]


def test_world_folders_in_the_mit_states_format(root):
    world = json.loads((root.parent / "world.json").read_text())["counts"]["mit_states"]
    assert not set(TRAIN_OBJECTS) & set(TEST_NOUNS) and set(TEST_OBJECTS) <= set(TEST_NOUNS)
    for folder in SKIPPED_FOLDERS:  # written, with an image, and skipped by the reader
        assert any((root / "images" / folder).glob("*.jpg"))
    train, test = read_mit_states_images(root, "train"), read_mit_states_images(root, "test")
    assert len(train) == world["train"]["images"] and len(test) == world["test"]["images"] > 0
    assert {im.noun for im in train} == set(TRAIN_OBJECTS) and {im.noun for im in test} == set(TEST_OBJECTS)
    assert {im.adjective for im in test} <= {im.adjective for im in train}  # test states seen in training
    for image in (train[0], test[-1]):  # the adjective is the object's colour
        pixels = np.asarray(Image.open(root / image.path).convert("RGB")).reshape(-1, 3).astype(int)
        near = np.abs(pixels - np.array(COLOURS[image.adjective])).max(axis=1) < 40
        assert near.sum() > 20, image.path


def test_train_shards_hold_the_seeded_draws(root, tmp_path, capsys):
    out = tmp_path / "train"
    argv = ["mit_states", "--root", str(root), "--split", "train", "--out", str(out), "--size", "32"]
    argv += ["--pairs-per-image", "2", "--seed", "3", "--shard-size", "20", "--no-progress"]
    assert run_command(SHARDS, argv) == 0
    triplets = samples(out / "triplets")
    images = read_mit_states_images(root, "train")
    expected = draw_training_pairs(images, 2, seed=3)
    assert len(triplets) == 2 * len(images) == len(expected)
    for sample, (draw, position, pair) in zip(triplets, expected, strict=True):
        assert set(sample) == {"__key__", fields.QUERY_IMAGE, fields.TARGET_IMAGE, fields.TEXT, fields.META}
        assert sample["__key__"] == f"{draw:03d}_{position:07d}"
        meta = json.loads(sample[fields.META])
        ref, tgt = images[pair.reference], images[pair.target]
        assert (meta["reference"], meta["target"]) == (ref.path, tgt.path)
        assert sample[fields.TEXT].decode() == meta["text"] == tgt.adjective != ref.adjective
        assert meta["target_label"] == f"{tgt.adjective} {ref.noun}"
        assert Image.open(io.BytesIO(sample[fields.QUERY_IMAGE])).size == (32, 32)
    assert len(samples(out / "gallery")) == len(images)
    again = tmp_path / "again"
    assert run_command(SHARDS, [*argv[:6], str(again), *argv[7:], "--workers", "2"]) == 0
    assert folder_bytes(again) == folder_bytes(out)
    capsys.readouterr()
    assert (
        run_command(SHARDS, [*argv[:6], str(tmp_path / "bad"), *argv[7:], "--set", "mit_states_draw=x"]) == 2
    )
    assert "key 'mit_states_draw': must be one of other, released" in capsys.readouterr().err


def test_test_shards_are_queries_and_gallery(root, tmp_path):
    world = json.loads((root.parent / "world.json").read_text())["counts"]["mit_states"]
    out = tmp_path / "test"
    argv = ["mit_states", "--root", str(root), "--split", "test", "--out", str(out), "--size", "32"]
    assert run_command(SHARDS, [*argv, "--mit-states-text", "adjective_noun", "--no-progress"]) == 0
    assert not (out / "triplets").exists()
    queries = samples(out / "queries")
    assert len(queries) == world["test"]["queries"] > 0
    for sample in queries:
        meta = json.loads(sample[fields.META])
        assert sample[fields.TEXT].decode() == meta["text"] == meta["target_label"] != meta["reference_label"]
        assert meta["target_label"].split()[1] == meta["reference_label"].split()[1]  # the same noun
    gallery = [json.loads(s[fields.META]) for s in samples(out / "gallery")]
    assert [g["label"] for g in gallery] == [im.label for im in read_mit_states_images(root, "test")]


def test_vocabulary_of_the_training_labels(root, tmp_path, capsys):
    out = tmp_path / "vocab.json"
    assert (
        run_command(
            "coir.datasets.vocab_cli", ["--dataset", "mit_states", "--root", str(root), "--out", str(out)]
        )
        == 0
    )
    words: list[str] = []  # first appearance over the training images' "adjective noun", sorted folders
    for folder in sorted(p.name for p in (root / "images").iterdir()):
        adjective, _, noun = folder.partition(" ")
        if noun in TRAIN_OBJECTS and adjective != "adj":
            words += [w for w in (adjective, noun) if w not in words]
    vocab = Vocabulary.load(out)
    assert vocab.words == [*SPECIAL_TOKENS, *words]
    assert len(words) == len(TRAIN_OBJECTS) + 6  # four nouns, six colours; no test noun, no "adj"
    assert f"{len(vocab):,} entries" in capsys.readouterr().out


def coir_eval(*argv: object) -> int:
    from coir.eval import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args([str(a) for a in argv]))


def test_coir_eval_of_a_tiny_artemis(root, tmp_path):
    from coir.pipeline.models.artemis.config import ArtemisModelConfig
    from coir.pipeline.models.export import save_export
    from coir.pipeline.models.registry import build_model

    vocabulary = tmp_path / "vocab.json"
    argv = ["--dataset", "mit_states", "--root", str(root), "--out", str(vocabulary)]
    assert run_command("coir.datasets.vocab_cli", argv) == 0
    torch.manual_seed(0)
    config = ArtemisModelConfig(
        vocabulary=str(vocabulary), backbone="resnet18", embed_dim=32, word_dim=16, image_size=32, resize=32
    )
    export = save_export(build_model(config), tmp_path / "export")
    test = read_mit_states_images(root, "test")
    assert all(len(adjectives) == 3 for _, adjectives in TEST_OBJECTS.values())
    expected = 2 * len(test)  # each test image x the two other adjectives of its noun
    for text in ("adjective", "adjective_noun"):
        out = tmp_path / text
        code = coir_eval(
            "--checkpoint", export, "--benchmark", "mit_states", "--split", "test", "--data-root", root,
            "--out", out, "--no-cache", "--num-workers", "0", "--no-pictures", "--text", text,
        )  # fmt: skip
        assert code == 0
        metrics = json.loads((out / "results.json").read_text())["mit_states/test"]["artemis"]
        assert set(metrics) == {"R@1", "R@5", "R@10", "R@50", "queries"} and metrics["queries"] == expected
        assert metrics["R@1"] <= metrics["R@5"] <= metrics["R@10"] <= metrics["R@50"] == 100.0
    from coir.common.config import load_config
    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig

    overrides = ["benchmark=mit_states", "split=test", f"data_root={root}", "cache=false", "num_workers=0"]
    config = load_config(EvalConfig, overrides=[*overrides, "options.mit_states.text=adjective_noun"])
    (result,) = evaluate(export, config).results["mit_states/test"]
    task, ranking = result.task, result.ranking
    assert [q.text.split()[1] for q in task.queries] == [
        test[i].noun for i in range(len(test)) for _ in (0, 1)
    ]
    for i, query in enumerate(task.queries):  # the first retrieved image with the target's label
        assert query.reference not in result.top_names(i)
        labels = [task.gallery_labels[j] for j in ranking.top_indices[i]]
        assert labels.index(query.text) == ranking.target_rank[i]

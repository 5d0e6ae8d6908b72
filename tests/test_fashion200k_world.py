"""The synthetic Fashion200k twin through the commands a user runs: its files, `coir data shards
fashion200k` (train draws and test queries, round trip), `coir data vocab --dataset fashion200k`,
and `coir eval --benchmark fashion200k` of a tiny exported model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from lasco_fixture import folder_bytes, run_command, tar_samples
from synth_fixture import built_world

from coir.common import fields
from coir.datasets.fashion200k import (
    FASHION200K_CATEGORIES,
    PairIndex,
    draw_training_pairs,
    read_fashion200k_images,
    read_test_queries,
)
from coir.datasets.vocab import SPECIAL_TOKENS, Vocabulary

SHARDS = "coir.datasets.shards.cli"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return built_world(tmp_path_factory) / "fashion200k"


def label_lines(root: Path, category: str, split: str) -> list[list[str]]:
    text = (root / "labels" / f"{category}_{split}_detect_all.txt").read_text()
    return [line.split("\t") for line in text.splitlines()]


def samples(folder: Path) -> list[dict[str, bytes]]:
    return [s for p in sorted(folder.glob("*.tar")) for s in tar_samples(p)]


def test_world_files_in_the_fashion200k_format(root):
    world = json.loads((root.parent / "world.json").read_text())["counts"]["fashion200k"]
    for split in ("train", "test"):
        rows = [row for c in FASHION200K_CATEGORIES for row in label_lines(root, c, split)]
        assert len(rows) == world[split]["images"] > 0 and all(len(row) == 3 for row in rows)
        assert all((root / path).is_file() and path.startswith("women/") for path, _, _ in rows)
        assert all(0.0 <= float(score) <= 1.0 for _, score, _ in rows)
    descriptions = {
        path: text for c in FASHION200K_CATEGORIES for path, _, text in label_lines(root, c, "test")
    }
    queries = [line.split() for line in (root / "test_queries.txt").read_text().splitlines()]
    assert len(queries) == world["test"]["queries"] == len(read_test_queries(root)) > 0
    for reference, target in queries:  # siblings: one word apart, same length
        a, b = descriptions[reference].split(), descriptions[target].split()
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1
    train = read_fashion200k_images(root, "train")
    assert PairIndex([im.description for im in train]).modifiable == len(train)  # every image has a sibling


def test_train_shards_hold_the_seeded_draws(root, tmp_path):
    out = tmp_path / "train"
    argv = ["fashion200k", "--root", str(root), "--split", "train", "--out", str(out), "--size", "32"]
    argv += ["--pairs-per-image", "2", "--seed", "3", "--shard-size", "50", "--no-progress"]
    assert run_command(SHARDS, argv) == 0
    triplets = samples(out / "triplets")
    images = read_fashion200k_images(root, "train")
    expected = draw_training_pairs([im.description for im in images], 2, seed=3)
    assert len(triplets) == 2 * len(images) == len(expected)
    for sample, (draw, position, pair) in zip(triplets, expected, strict=True):
        assert set(sample) == {"__key__", fields.QUERY_IMAGE, fields.TARGET_IMAGE, fields.TEXT, fields.META}
        assert sample["__key__"] == f"{draw:03d}_{position:07d}"
        meta = json.loads(sample[fields.META])
        assert (meta["reference"], meta["target"]) == (images[pair.reference].path, images[pair.target].path)
        assert sample[fields.TEXT].decode() == meta["text"] == pair.text
        words = pair.text.split()  # "replace X with Y": X in the reference only, Y in the target only
        assert words[0] == "replace" and words[2] == "with"
        assert words[1] in meta["reference_description"].split() and words[3] in meta["target_description"]
    gallery = samples(out / "gallery")
    assert len(gallery) == len(images)
    assert {json.loads(s[fields.META])["description"] for s in gallery} == {im.description for im in images}
    again = tmp_path / "again"
    assert run_command(SHARDS, [*argv[:6], str(again), *argv[7:], "--workers", "2"]) == 0
    assert folder_bytes(again) == folder_bytes(out)


def test_test_shards_are_queries_and_gallery(root, tmp_path):
    out = tmp_path / "test"
    argv = ["fashion200k", "--root", str(root), "--split", "test", "--out", str(out), "--size", "32"]
    assert run_command(SHARDS, [*argv, "--no-progress"]) == 0
    assert not (out / "triplets").exists()
    queries = samples(out / "queries")
    lines = (root / "test_queries.txt").read_text().splitlines()
    assert len(queries) == len(lines)
    assert all(set(s) == {"__key__", fields.QUERY_IMAGE, fields.TEXT, fields.META} for s in queries)
    first = json.loads(queries[0][fields.META])
    assert f"{first['reference']} {first['target']}" == lines[0] and first["text"].startswith("replace ")
    assert len(samples(out / "gallery")) == sum(
        len(label_lines(root, c, "test")) for c in FASHION200K_CATEGORIES
    )


def test_vocabulary_of_the_training_descriptions(root, tmp_path, capsys):
    out = tmp_path / "vocab.json"
    argv = ["--dataset", "fashion200k", "--root", str(root), "--out", str(out)]
    assert run_command("coir.datasets.vocab_cli", argv) == 0
    words: list[str] = []  # first appearance, files in the reference's order
    for category in ("dress", "skirt", "jacket", "pants", "top"):
        for _, _, text in label_lines(root, category, "train"):
            words += [w for w in text.split() if w not in words]
    vocab = Vocabulary.load(out)
    assert vocab.words == [*SPECIAL_TOKENS, "replace", "with", *words]
    assert f"{len(vocab):,} entries" in capsys.readouterr().out


def test_vocabulary_keeps_replace_and_with_once(tmp_path):
    from coir.datasets.vocab import build_vocabulary

    labels = tmp_path / "f" / "labels"
    labels.mkdir(parents=True)
    rows = {
        "skirt": "b.jpg\t0.5\tSkirt with Pockets",
        "dress": "a.jpg\t0.5\tlace-up dress.",
        "top": "c.jpg\t1\ttop",
    }
    for category in FASHION200K_CATEGORIES:
        (labels / f"{category}_train_detect_all.txt").write_text(rows.get(category, "") + "\n")
    vocab = build_vocabulary("fashion200k", tmp_path / "f")
    # dress file first ("-" splits, "." dropped: the ARTEMIS clean-up of the raw description), then skirt
    assert vocab.words == [
        *SPECIAL_TOKENS,
        "replace",
        "with",
        "lace",
        "up",
        "dress",
        "skirt",
        "pockets",
        "top",
    ]
    assert vocab.encode_query("replace red with lace") == [1, 5, 4, 6, 7, 3]


def test_coir_eval_on_the_synthetic_benchmark(root, tmp_path):
    from coir.eval import cli
    from coir.pipeline.models.blip.config import BlipModelConfig
    from coir.pipeline.models.blip.tokenizer import train_wordpiece
    from coir.pipeline.models.export import save_export
    from coir.pipeline.models.registry import build_model

    texts = [im.description for im in read_fashion200k_images(root, "train")] + ["replace with"]
    tokenizer = train_wordpiece(texts, tmp_path / "tokenizer-src", vocab_size=120)
    torch.manual_seed(0)
    model = build_model(
        BlipModelConfig(preset="tiny", tokenizer=str(tokenizer), image_size=32, max_length=16)
    )
    export = save_export(model, tmp_path / "export")
    out = tmp_path / "out"
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    argv = ["--checkpoint", export, "--benchmark", "fashion200k", "--split", "test", "--data-root", root]
    argv += ["--out", out, "--no-cache", "--num-workers", "0", "--no-pictures"]
    assert cli.run(parser.parse_args([str(a) for a in argv])) == 0
    n_queries = len((root / "test_queries.txt").read_text().splitlines())
    metrics = json.loads((out / "results.json").read_text())["fashion200k/test"]["case"]
    assert set(metrics) == {"R@1", "R@10", "R@50", "avg", "queries"} and metrics["queries"] == n_queries
    assert metrics["R@1"] <= metrics["R@10"] <= metrics["R@50"]
    # the target rank is the first top-list position holding the target's description
    from coir.common.config import load_config
    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig

    config = load_config(
        EvalConfig,
        overrides=[
            "benchmark=fashion200k",
            "split=test",
            f"data_root={root}",
            "cache=false",
            "num_workers=0",
        ],
    )
    (result,) = evaluate(export, config).results["fashion200k/test"]
    task, ranking = result.task, result.ranking
    assert ranking.top_indices.shape[1] >= 50 and len(task.gallery_names) > 50
    for i, query in enumerate(task.queries):
        wanted = task.gallery_labels[task.index_of(query.target)]
        top = [task.gallery_labels[j] for j in ranking.top_indices[i]]
        assert query.reference not in result.top_names(i)
        first = top.index(wanted) if wanted in top else -1
        assert ranking.target_rank[i] == first or (first == -1 and ranking.target_rank[i] >= 50)

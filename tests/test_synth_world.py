"""The synthetic world: real formats through the real readers, determinism, redundancy labels."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import pytest
from synth_fixture import built_world, load

from coir.datasets.cirr import read_cirr_image_split, read_cirr_triplets
from coir.datasets.coco import coco_image_path
from coir.datasets.fashioniq import fashioniq_image_path, read_fashioniq_image_split, read_fashioniq_triplets
from coir.datasets.lasco.normalize import normalize_answer
from coir.datasets.records import FASHIONIQ_CATEGORIES
from coir.datasets.synth import cli as synth_cli
from coir.datasets.synth.build import sha256_tree
from coir.datasets.vqa import read_complementary_pairs, read_vqa_annotations, read_vqa_questions, vqa_paths

VQA_SPLITS = ("train2014", "val2014")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_world(tmp_path_factory)


def run_synth_command(*argv: str) -> int:
    """`coir data synth ARGS` through the command module itself (parser + run)."""
    parser = argparse.ArgumentParser()
    synth_cli.add_arguments(parser)
    return synth_cli.run(parser.parse_args(argv))


def test_same_seed_same_bytes_through_the_cli_other_seed_differs(tiny_world: Path, tmp_path_factory) -> None:
    again = tmp_path_factory.mktemp("synth-again")
    code = run_synth_command("--out", str(again), "--seed", "0", "--scale", "tiny", "--no-progress")
    assert code == 0
    first, second = sha256_tree(tiny_world), sha256_tree(again)
    assert len(first) > 500
    assert first == second
    other = sha256_tree(built_world(tmp_path_factory, seed=1))
    assert set(other) & set(first)
    changed = [p for p in first if other.get(p) != first[p]]
    assert "vqa/v2_mscoco_val2014_annotations.json" in changed
    assert len(changed) > len(first) // 2


@pytest.mark.parametrize("split", VQA_SPLITS)
def test_vqa_files_load_through_the_readers(tiny_world: Path, real_data: Path, split: str) -> None:
    paths = vqa_paths(tiny_world / "vqa", split)
    questions = read_vqa_questions(paths.questions)
    annotations = read_vqa_annotations(paths.annotations)
    pairs = read_complementary_pairs(paths.complementary_pairs)
    counts = load(tiny_world / "world.json")["counts"]["vqa"][split]
    assert (len(questions), len(pairs)) == (counts["questions"], counts["complementary_pairs"])
    assert [a.question_id for a in annotations] == [q.question_id for q in questions]

    qtypes = set((real_data / "vqa" / "mscoco_question_types.txt").read_text().splitlines())
    image_ids = {q.image_id for q in questions}
    assert len(image_ids) == counts["images"]
    for image_id in image_ids:
        assert coco_image_path(tiny_world / "coco", split, image_id).is_file()
    by_qid = {a.question_id: a for a in annotations}
    text = {q.question_id: q.question for q in questions}
    for q in questions:
        assert q.question_id // 1000 == q.image_id
    low_agreement = 0
    for a in annotations:
        assert a.question_type in qtypes
        assert text[a.question_id].lower().startswith(a.question_type)
        assert a.answer_type in {"yes/no", "number", "other"}
        assert [x.answer_id for x in a.answers] == list(range(1, 11))
        assert {x.answer_confidence for x in a.answers} <= {"yes", "maybe", "no"}
        tally = Counter(normalize_answer(x.answer) for x in a.answers)  # "Red", "red." count as "red"
        assert tally[a.multiple_choice_answer] == max(tally.values())  # the true answer is a mode
        low_agreement += tally[a.multiple_choice_answer] <= 2
    assert low_agreement > 0  # something for an agreement filter (LaSCo default: >= 3 of 10) to drop

    scenes = load(tiny_world / "truth" / f"coco_scenes_{split}.json")
    seen: set[int] = set()
    for q1, q2 in pairs:
        assert text[q1] == text[q2]
        assert by_qid[q1].multiple_choice_answer != by_qid[q2].multiple_choice_answer
        f1, f2 = scenes[str(q1 // 1000)], scenes[str(q2 // 1000)]
        assert f1["family"] == f2["family"] and q1 // 1000 != q2 // 1000
        assert not {q1, q2} & seen
        seen |= {q1, q2}


def test_gallery_has_near_duplicates_of_most_references(tiny_world: Path) -> None:
    scenes = load(tiny_world / "truth" / "coco_scenes_val2014.json")
    family_size = Counter(s["family"] for s in scenes.values())
    queries = load(tiny_world / "truth" / "vqa_queries_val2014.json")
    sizes = [family_size[scenes[str(q["reference_image_id"])]["family"]] for q in queries]
    # "both"/"text" queries: the reference has >= 3 near-duplicates besides the target
    assert sum(s >= 5 for s in sizes) / len(sizes) > 0.7
    for q, size in zip(queries, sizes, strict=True):
        if q["label"] == "image":
            assert size == 2


@pytest.mark.parametrize("split", ("train", "val", "test1"))
def test_cirr_files_load_through_the_readers(tiny_world: Path, split: str) -> None:
    root = tiny_world / "cirr"
    triplets = read_cirr_triplets(root, split)
    image_split = read_cirr_image_split(root, split)
    counts = load(tiny_world / "world.json")["counts"]["cirr"][split]
    assert (len(triplets), len(image_split)) == (counts["queries"], counts["images"])
    prefix = {"train": "train-", "val": "dev-", "test1": "test1-"}[split]
    for rel in image_split.values():
        assert (root / rel).is_file() and rel.startswith(f"./{'train' if split == 'train' else prefix[:-1]}/")
    for t in triplets:
        members = t.img_set.members
        assert len(members) == 6 == len(set(members))
        assert t.reference in members and all(m in image_split for m in members)
        assert t.reference.startswith(prefix)
        assert t.caption
        if split == "test1":
            assert t.target_hard is None
        else:
            assert t.target_hard in members and t.target_hard != t.reference
            assert t.target_soft == {t.target_hard: 1.0}
            assert members[t.img_set.reference_rank] == t.reference
            assert members[t.img_set.target_rank] == t.target_hard
    assert len({t.pairid for t in triplets}) == len(triplets)


@pytest.mark.parametrize("split", ("train", "val", "test"))
def test_fashioniq_files_load_through_the_readers(tiny_world: Path, split: str) -> None:
    root = tiny_world / "fashioniq"
    counts = load(tiny_world / "world.json")["counts"]["fashioniq"][split]
    for category in FASHIONIQ_CATEGORIES:
        triplets = read_fashioniq_triplets(root, category, split)
        asins = read_fashioniq_image_split(root, category, split)
        assert (len(triplets), len(asins)) == (counts[category]["queries"], counts[category]["images"])
        assert len(set(asins)) == len(asins)
        for asin in asins:
            assert asin.startswith("B00") and len(asin) == 10
            assert fashioniq_image_path(root, asin).is_file()
        for t in triplets:
            assert len(t.captions) == 2 and all(t.captions)
            assert t.candidate in asins
            assert (t.target is None) if split == "test" else (t.target in asins and t.target != t.candidate)


def test_redundancy_shares_in_world_json_match_the_truth_labels(tiny_world: Path) -> None:
    world = load(tiny_world / "world.json")
    truth = tiny_world / "truth"
    files = {f"lasco/{s[:-4]}": [truth / f"vqa_redundancy_{s}.json"] for s in VQA_SPLITS}
    files |= {f"cirr/{s}": [truth / f"cirr_redundancy_{s}.json"] for s in ("train", "val", "test1")}
    for s in ("train", "val", "test"):
        files[f"fashioniq/{s}"] = [truth / f"fashioniq_redundancy_{c}_{s}.json" for c in FASHIONIQ_CATEGORIES]
        for c in FASHIONIQ_CATEGORIES:
            files[f"fashioniq-{c}/{s}"] = [truth / f"fashioniq_redundancy_{c}_{s}.json"]
    assert set(files) == set(world["redundancy"])
    for key, paths in files.items():
        labels = [label for p in paths for label in load(p).values()]
        summary = world["redundancy"][key]
        assert set(labels) <= {"both", "image", "text"}
        assert summary["queries"] == len(labels)
        assert summary["counts"] == {k: labels.count(k) for k in ("both", "image", "text")}
        assert summary["share"]["image"] == round(labels.count("image") / len(labels), 4)
    for split in ("val2014",):  # held-out splits are built to the designed shares
        shares = world["redundancy"][f"lasco/{split[:-4]}"]["share"]
        assert 0.08 <= shares["image"] <= 0.25 and 0.08 <= shares["text"] <= 0.3
        assert shares["both"] >= 0.5


def test_truth_labels_are_keyed_like_the_benchmarks(tiny_world: Path) -> None:
    truth = tiny_world / "truth"
    for split in VQA_SPLITS:
        pairs = read_complementary_pairs(vqa_paths(tiny_world / "vqa", split).complementary_pairs)
        labels = load(truth / f"vqa_redundancy_{split}.json")
        assert set(labels) == {str(q) for pair in pairs for q in pair}  # both directions of every pair
    for split in ("train", "val", "test1"):
        triplets = read_cirr_triplets(tiny_world / "cirr", split)
        assert set(load(truth / f"cirr_redundancy_{split}.json")) == {str(t.pairid) for t in triplets}
    for category in FASHIONIQ_CATEGORIES:
        n = len(read_fashioniq_triplets(tiny_world / "fashioniq", category, "val"))
        assert list(load(truth / f"fashioniq_redundancy_{category}_val.json")) == [str(i) for i in range(n)]


def _holds(fact: list, scene: dict) -> bool:
    kind, *args = fact
    objs = [(o["shape"], o["colour"]) for o in scene["objects"]]
    if kind == "obj":
        return tuple(args) in objs
    if kind == "count":
        return sum(s == args[0] for s, _ in objs) == args[1]
    return any(s == args[0] for s, _ in objs)


def test_text_labels_recomputed_from_the_scene_truth(tiny_world: Path) -> None:
    """A "text" query's target is the only val image (besides the reference) with what the text says;
    any other query's text holds for at least one more image."""
    scenes = load(tiny_world / "truth" / "coco_scenes_val2014.json")
    queries = load(tiny_world / "truth" / "vqa_queries_val2014.json")
    assert {q["label"] for q in queries} == {"both", "image", "text"}
    for q in queries:
        others = [k for k, s in scenes.items() if k != str(q["reference_image_id"]) and _holds(q["fact"], s)]
        assert str(q["target_image_id"]) in others
        assert (others == [str(q["target_image_id"])]) == (q["label"] == "text")


@pytest.mark.parametrize("split", VQA_SPLITS)
def test_image_and_text_together_single_out_the_target(tiny_world: Path, split: str) -> None:
    """Among the reference's near-duplicates (its family) the text holds for the target only."""
    scenes = load(tiny_world / "truth" / f"coco_scenes_{split}.json")
    family: dict[int, list[str]] = {}
    for k, s in scenes.items():
        family.setdefault(s["family"], []).append(k)
    for q in load(tiny_world / "truth" / f"vqa_queries_{split}.json"):
        ref = str(q["reference_image_id"])
        matching = [k for k in family[scenes[ref]["family"]] if k != ref and _holds(q["fact"], scenes[k])]
        assert matching == [str(q["target_image_id"])], q

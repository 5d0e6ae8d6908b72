"""MIT-States in the TIRG protocol on a small hand-written tree: the folders the reference skips, the
test queries, the training draws, malformed trees, and the hit-by-label ranking, worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from coir.common.config import load_config
from coir.common.errors import ConfigError, DataFormatError, MissingInputError
from coir.datasets.mit_states import (
    TEST_NOUNS,
    build_test_queries,
    draw_training_pairs,
    noun_adjectives,
    read_mit_states_images,
)
from coir.eval.benchmarks import get_benchmark
from coir.eval.config import EvalConfig
from coir.eval.ranking import rank

# folder -> files; "clock" and "fan" are test nouns, "apple" a training noun
TREE = {
    "old clock": ["b.jpg", "a.jpg"],
    "new clock": ["c.jpg"],
    "broken fan": ["d.jpg"],
    "large fan": ["e.jpg"],
    "adj clock": ["x.jpg"],  # adjective "adj": skipped
    "adj apple": ["x.jpg"],
    "misc": ["y.jpg", "notes.txt"],  # no space: skipped, whatever it holds
    "ripe apple": ["r1.jpg", "r2.jpg"],
    "rotten apple": ["s.jpg"],
}


def write_tree(root: Path, tree: dict[str, list[str]] = TREE) -> Path:
    for folder, files in tree.items():
        (root / "images" / folder).mkdir(parents=True)
        for name in files:
            (root / "images" / folder / name).write_bytes(b"")
    (root / "images" / "README").write_text("a file without a space: skipped too")
    return root


def test_the_49_test_nouns():
    assert len(TEST_NOUNS) == len(set(TEST_NOUNS)) == 49 and {"clock", "fan"} <= set(TEST_NOUNS)
    assert "apple" not in TEST_NOUNS


def test_reader_skips_the_reference_folders_and_splits_by_noun(tmp_path):
    root = write_tree(tmp_path)
    test = read_mit_states_images(root, "test")
    # sorted folders: broken fan, large fan, new clock, old clock (files sorted: a before b)
    assert [im.path for im in test] == [
        "images/broken fan/d.jpg",
        "images/large fan/e.jpg",
        "images/new clock/c.jpg",
        "images/old clock/a.jpg",
        "images/old clock/b.jpg",
    ]
    assert [(im.adjective, im.noun, im.label) for im in test[3:4]] == [("old", "clock", "old clock")]
    train = read_mit_states_images(root, "train")
    assert [im.path for im in train] == [
        "images/ripe apple/r1.jpg",
        "images/ripe apple/r2.jpg",
        "images/rotten apple/s.jpg",
    ]
    assert noun_adjectives(test) == {"fan": ["broken", "large"], "clock": ["new", "old"]}


def test_test_queries_worked_by_hand(tmp_path):
    images = read_mit_states_images(write_tree(tmp_path), "test")
    # each image with each other adjective of its noun: 2 fans x 1 + 3 clocks x 1 = 5
    expected = [
        (0, "large", "large fan"),  # broken fan -> large fan
        (1, "broken", "broken fan"),
        (2, "old", "old clock"),  # new clock -> old clock (two images answer)
        (3, "new", "new clock"),
        (4, "new", "new clock"),
    ]
    queries = build_test_queries(images)
    assert [(q.reference, q.adjective, q.target_label) for q in queries] == expected
    # three adjectives: each image gets the two others, in the noun's first-seen order
    tree = {"old clock": ["a.jpg"], "new clock": ["b.jpg"], "wet clock": ["c.jpg"]}
    three = read_mit_states_images(write_tree(tmp_path / "three", tree), "test")
    got = [(three[q.reference].adjective, q.adjective) for q in build_test_queries(three)]
    assert got == [
        ("new", "old"),
        ("new", "wet"),
        ("old", "new"),
        ("old", "wet"),
        ("wet", "new"),
        ("wet", "old"),
    ]


def eval_config(root: Path, *extra: str) -> EvalConfig:
    return load_config(
        EvalConfig, overrides=["benchmark=mit_states", "split=test", f"data_root={root}", *extra]
    )


def test_benchmark_task_and_text_forms(tmp_path):
    root = write_tree(tmp_path)
    benchmark = get_benchmark("mit_states")
    (task,) = benchmark.tasks(eval_config(root))
    assert task.name == "mit_states/test" and task.ks == (1, 5, 10, 50)
    assert task.gallery_labels == ["broken fan", "large fan", "new clock", "old clock", "old clock"]
    assert [q.text for q in task.queries] == ["large", "broken", "old", "new", "new"]
    assert [q.exclude for q in task.queries] == [(n,) for n in task.gallery_names]  # its own image
    assert task.queries[2].target == "images/old clock/a.jpg"  # the label's first image stands for it
    assert task.is_hit(task.queries[2], "images/old clock/b.jpg")
    assert not task.is_hit(task.queries[2], "images/new clock/c.jpg")
    config = eval_config(root, "options.mit_states.text=adjective_noun")
    benchmark.check(config)
    (task,) = benchmark.tasks(config)
    assert [q.text for q in task.queries] == [
        "large fan",
        "broken fan",
        "old clock",
        "new clock",
        "new clock",
    ]
    with pytest.raises(ConfigError, match="options.mit_states.text"):
        benchmark.check(eval_config(root, "options.mit_states.text=noun"))
    with pytest.raises(ConfigError, match="mit_states has the splits test"):
        benchmark.check(eval_config(root, "split=val"))


# gallery first coordinates: g0 .5 broken fan, g1 .1 large fan, g2 .9 new clock, g3 .3 old clock,
# g4 .7 old clock. q = (1, 0) ranks g2 g4 g0 g3 g1, q = (-1, 0) the reverse; the reference is removed.
# q0 ref g0 -> large fan {g1}, (1, 0): g2 g4 g3 g1 -> rank 3
# q1 ref g1 -> broken fan {g0}, (1, 0): g2 g4 g0 -> rank 2
# q2 ref g2 -> old clock {g3, g4}, (1, 0): g4 first -> rank 0 (the named target g3 alone: rank 2)
# q3 ref g3 -> new clock {g2}, (-1, 0): g1 g0 g4 g2 -> rank 3
# q4 ref g4 -> new clock {g2}, (1, 0): g2 -> rank 0
GALLERY = torch.tensor([[0.5, 0.0], [0.1, 0.0], [0.9, 0.0], [0.3, 0.0], [0.7, 0.0]])
QUERIES = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])


def test_hit_by_label_metric_worked_by_hand(tmp_path):
    from coir.eval.metrics import recall_at_k

    benchmark = get_benchmark("mit_states")
    (task,) = benchmark.tasks(eval_config(write_tree(tmp_path)))
    exclude = [[task.index_of(n) for n in q.exclude] for q in task.queries]
    ranking = rank(QUERIES, GALLERY, k=4, exclude=exclude, groups=task.hit_groups(task.queries))
    assert ranking.target_rank.tolist() == [3, 2, 0, 3, 0]
    metrics = benchmark.metrics(task, ranking)
    assert metrics == {"R@1": 40.0, "R@5": 100.0, "R@10": 100.0, "R@50": 100.0}
    assert benchmark.main_measure(metrics) == 40.0
    assert recall_at_k(ranking.target_rank, (2, 3)) == {"R@2": 40.0, "R@3": 60.0}
    targets = [task.index_of(q.target) for q in task.queries]
    exact = rank(QUERIES, GALLERY, k=4, targets=targets, exclude=exclude)
    assert exact.target_rank.tolist()[2] == 2  # for contrast: only the named image would be a hit


def test_training_draws(tmp_path):
    tree = {"ripe apple": ["a.jpg", "b.jpg"], "rotten apple": ["c.jpg"], "wet dog": ["d.jpg"]}
    tree |= {"dry dog": ["e.jpg"], "old dog": ["f.jpg"]}
    images = read_mit_states_images(write_tree(tmp_path, tree), "train")
    pairs = draw_training_pairs(images, 3, seed=5)
    assert len(pairs) == 3 * len(images) and pairs == draw_training_pairs(images, 3, seed=5)
    assert pairs != draw_training_pairs(images, 3, seed=6)
    for n in range(3):  # every image once per pass
        assert sorted(p.reference for d, _, p in pairs if d == n) == list(range(len(images)))
    for _, _, p in pairs:  # paper: same noun, another adjective
        ref, tgt = images[p.reference], images[p.target]
        assert ref.noun == tgt.noun and ref.adjective != tgt.adjective
    released = draw_training_pairs(images, 2, seed=5, draw="released")
    assert len(released) == 2 * len(images)
    # two pairs per drawn reference (the second given as the next item), their adjectives different
    for first, second in zip(released[0::2], released[1::2], strict=True):
        a, b = first[2], second[2]
        assert a.reference == b.reference and images[a.target].adjective != images[b.target].adjective
        assert images[a.target].noun == images[b.target].noun == images[a.reference].noun
    with pytest.raises(ConfigError, match="'draw'"):
        draw_training_pairs(images, 1, seed=0, draw="paper")


@pytest.mark.parametrize(
    ("tree", "where", "message"),
    [
        ({"very old clock": ["a.jpg"]}, "images/very old clock", "got 3 words"),
        ({"old clock": ["a.jpg", "notes.txt"], "new clock": ["b.jpg"]}, "old clock/notes.txt", "only .jpg"),
        ({"old clock": ["a.jpg"], "new fan": ["b.jpg"], "old fan": ["c.jpg"]}, "old clock", "one adjective"),
    ],
)
def test_malformed_trees_name_the_folder_or_file(tmp_path, tree, where, message):
    root = write_tree(tmp_path, tree)
    with pytest.raises(DataFormatError, match=message) as error:
        read_mit_states_images(root, "test")
    assert str(error.value.path).endswith(where)


def test_a_file_named_like_a_folder_and_a_missing_root(tmp_path):
    root = write_tree(tmp_path, {"new clock": ["a.jpg"]})
    (root / "images" / "old clock").write_text("not a folder")
    with pytest.raises(DataFormatError, match="found a file") as error:
        read_mit_states_images(root, "test")
    assert error.value.path.name == "old clock"
    with pytest.raises(MissingInputError):
        read_mit_states_images(tmp_path / "nowhere", "test")

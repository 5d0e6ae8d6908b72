"""Fashion200k in the TIRG protocol on small hand-written files: the description clean-up, the test
queries, the training-pair rule (token deletion and the released substring deletion), malformed
files, and the hit-by-description ranking, each worked out by hand."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from coir.common.errors import ConfigError, DataFormatError
from coir.datasets.fashion200k import (
    FASHION200K_CATEGORIES,
    PairIndex,
    build_test_queries,
    clean_description,
    different_words,
    draw_training_pairs,
    read_fashion200k_images,
    unique_images,
)
from coir.eval.ranking import rank

D = "women/dresses/casual_and_day_dresses"
T = "women/tops/blouses"
TEST_LABELS = {
    "dress": [
        f"{D}/1/1_0.jpeg\t0.91\tblack leopard print dress",
        f"{D}/2/2_0.jpeg\t0.80\tred leopard print dress",
        f"{D}/3/3_0.jpeg\t0.70\t  blue dress. ",
    ],
    "top": [
        f"{T}/4/4_0.jpeg\t0.50\tred & white top",
        f"{T}/5/5_0.jpeg\t0.55\tred striped top",
        "",
    ],
}
TEST_QUERIES = [
    f"{D}/1/1_0.jpeg {D}/2/2_0.jpeg",
    f"{T}/4/4_0.jpeg\t{T}/5/5_0.jpeg",
    f"{D}/2/2_0.jpeg {T}/5/5_0.jpeg",
    "",
    f"{D}/3/3_0.jpeg {D}/3/3_0.jpeg",
]


def write_root(
    root: Path, labels: dict[str, list[str]], split: str = "test", queries: list[str] | None = None
):
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for category in FASHION200K_CATEGORIES:
        lines = labels.get(category, [])
        text = "".join(f"{line}\n" for line in lines)
        (root / "labels" / f"{category}_{split}_detect_all.txt").write_text(text)
    if queries is not None:
        (root / "test_queries.txt").write_text("".join(f"{q}\n" for q in queries))
    return root


@pytest.fixture()
def test_root(tmp_path: Path) -> Path:
    return write_root(tmp_path / "f200k", TEST_LABELS, queries=TEST_QUERIES)


def test_description_cleanup_is_the_references():
    assert (
        clean_description("  3.1 phillip lim? a&b * \n")
        == "3dotmark1 phillip limquestionmark aandmarkb starmark"
    )


def test_reader_keeps_file_order_and_cleans(test_root):
    images = read_fashion200k_images(test_root, "test")
    assert [(im.category, im.line) for im in images] == [
        ("dress", 1),
        ("dress", 2),
        ("dress", 3),
        ("top", 1),
        ("top", 2),
    ]
    assert images[2].description == "blue dressdotmark" and images[2].raw_description == "  blue dress. "
    assert images[3].description == "red andmark white top" and images[3].detection_score == 0.5


def test_test_queries_worked_by_hand(test_root):
    gallery = unique_images(test_root, read_fashion200k_images(test_root, "test"), "test")
    queries = build_test_queries(test_root, gallery)
    assert [(q.reference, q.target, q.text, q.line) for q in queries] == [
        # the first unshared word on each side
        (f"{D}/1/1_0.jpeg", f"{D}/2/2_0.jpeg", "replace black with red", 1),
        # "&" became "andmark" before the words were compared; tab-separated paths split too
        (f"{T}/4/4_0.jpeg", f"{T}/5/5_0.jpeg", "replace andmark with striped", 2),
        # across categories: "leopard" is the first word of the dress missing from the top
        (f"{D}/2/2_0.jpeg", f"{T}/5/5_0.jpeg", "replace leopard with striped", 3),
        # the blank line 4 is skipped; every word shared: the reference's loops end on the last word
        (f"{D}/3/3_0.jpeg", f"{D}/3/3_0.jpeg", "replace dressdotmark with dressdotmark", 5),
    ]
    assert queries[2].target_description == "red striped top"


def test_benchmark_task(test_root):
    from coir.common.config import load_config
    from coir.eval.benchmarks import get_benchmark
    from coir.eval.config import EvalConfig, check_eval_config

    config = load_config(
        EvalConfig, overrides=["benchmark=fashion200k", "split=test", f"data_root={test_root}"]
    )
    check_eval_config(config)
    (task,) = get_benchmark("fashion200k").tasks(config)
    assert task.name == "fashion200k/test" and task.ks == (1, 10, 50)
    assert task.gallery_names == [f"{D}/{i}/{i}_0.jpeg" for i in (1, 2, 3)] + [
        f"{T}/{i}/{i}_0.jpeg" for i in (4, 5)
    ]
    assert task.gallery_paths[0] == test_root / f"{D}/1/1_0.jpeg"
    assert [q.exclude for q in task.queries] == [(q.reference,) for q in task.queries]
    assert [q.key for q in task.queries] == ["0", "1", "2", "3"]
    with pytest.raises(ConfigError, match="split"):
        check_eval_config(
            load_config(EvalConfig, overrides=["benchmark=fashion200k", f"data_root={test_root}"])
        )


def test_benchmark_option_gives_the_target_description_as_text(test_root):
    from coir.common.config import load_config
    from coir.eval.benchmarks import get_benchmark
    from coir.eval.config import EvalConfig, check_eval_config

    base = ["benchmark=fashion200k", "split=test", f"data_root={test_root}"]
    config = load_config(
        EvalConfig, overrides=[*base, "options.fashion200k.fashion200k_text=target_description"]
    )
    check_eval_config(config)
    (task,) = get_benchmark("fashion200k").tasks(config)
    assert [q.text for q in task.queries] == [
        "red leopard print dress", "red striped top", "red striped top", "blue dressdotmark"
    ]  # fmt: skip
    bad = load_config(EvalConfig, overrides=[*base, "options.fashion200k.fashion200k_text=caption"])
    with pytest.raises(ConfigError, match="fashion200k_text"):
        check_eval_config(bad)


def test_query_text_forms():
    from coir.datasets.fashion200k import query_text

    assert query_text("replace red with blue", "blue dress") == "replace red with blue"
    assert query_text("replace red with blue", "blue dress", "target_description") == "blue dress"
    with pytest.raises(ConfigError, match="text"):
        query_text("replace red with blue", "blue dress", "both")


# ---------------------------------------------------------------- training pairs

# token deletion: parents of "red tiered dress" are "tiered dress", "red dress", "red tiered";
# of "blue tiered dress" "tiered dress", "blue dress", "blue tiered"; of "red dress" "dress", "red";
# of "tie dress" "dress", "tie". Siblings: {red tiered dress, blue tiered dress} under "tiered dress"
# and {red dress, tie dress} under "dress".
# substring deletion (released): "red tiered dress".replace("red", "") = " tie dress" (the "red" of
# "tiered" goes too) -> "tie dress"; "tiered" -> "red  dress" -> "red dress"; "dress" -> "red tiered".
# "blue tiered dress" -> "tiered dress", "blue dress", "blue tiered". So "tiered dress" has one child
# and the two tiered dresses are no longer siblings; "red dress" and "tie dress" still are (under
# "dress").
PAIR_DESCRIPTIONS = ["red tiered dress", "blue tiered dress", "red dress", "tie dress", "blue tiered dress"]


def test_parents_by_token_deletion():
    index = PairIndex(PAIR_DESCRIPTIONS, "token")
    assert index.image_parents == [["tiered dress"], ["tiered dress"], ["dress"], ["dress"], ["tiered dress"]]
    assert index.children["tiered dress"] == ["red tiered dress", "blue tiered dress"]
    rng = random.Random(0)
    targets = {index.sample(0, rng).target for _ in range(200)}
    assert targets == {1, 4}  # both images described "blue tiered dress"
    pair = index.sample(1, rng)
    assert (pair.reference, pair.target, pair.parent, pair.text) == (
        1,
        0,
        "tiered dress",
        "replace blue with red",
    )
    pair = index.sample(2, rng)
    assert (pair.target, pair.text) == (3, "replace red with tie")


def test_parents_by_substring_deletion_as_released():
    index = PairIndex(PAIR_DESCRIPTIONS, "substring")
    assert index.image_parents == [[], [], ["dress"], ["dress"], []]
    assert index.children["tie dress"] == ["red tiered dress"]  # the substring quirk
    rng = random.Random(1)
    # a non-modifiable image's turn goes to a random modifiable one
    drawn = {(p.reference, p.target, p.text) for p in (index.sample(0, rng) for _ in range(100))}
    assert drawn == {(2, 3, "replace red with tie"), (3, 2, "replace tie with red")}


def test_draws_cover_every_image_each_pass_and_repeat_with_the_seed():
    pairs = draw_training_pairs(PAIR_DESCRIPTIONS, 3, seed=7)
    assert len(pairs) == 15
    for draw in range(3):
        assert sorted(p.reference for d, _, p in pairs if d == draw) == [0, 1, 2, 3, 4]  # all modifiable
    assert [d for d, _, _ in pairs] == [0] * 5 + [1] * 5 + [2] * 5
    assert pairs == draw_training_pairs(PAIR_DESCRIPTIONS, 3, seed=7)
    assert pairs != draw_training_pairs(PAIR_DESCRIPTIONS, 3, seed=8)


def test_different_words_falls_back_to_the_last_word():
    assert different_words("a b c", "c b a") == ("c", "a", "replace c with a")
    assert different_words("red red dress", "blue red dress") == ("dress", "blue", "replace dress with blue")


# ---------------------------------------------------------------- malformed files


@pytest.mark.parametrize(
    ("category", "line", "field", "message"),
    [
        ("dress", f"{D}/9/9_0.jpeg\t0.5", "description", "expected 3 tab-separated fields"),
        ("dress", f"{D}/9/9_0.jpeg", "detection_score", "got 1"),
        ("top", f"{T}/9/9_0.jpeg\thigh\tred top", "detection_score", "not a number"),
        ("top", f"{T}/9/9_0.jpeg\t0.5\t  ", "description", "empty description"),
        ("top", "\t0.5\tred top", "path", "empty image path"),
        ("top", f"{T}/9/9_0.jpeg\t0.5\tred\ttop", "description", "text after the description"),
    ],
)
def test_malformed_label_line_names_file_line_and_field(tmp_path, category, line, field, message):
    labels = {k: list(v) for k, v in TEST_LABELS.items()}
    labels[category].insert(1, line)
    root = write_root(tmp_path / "f", labels)
    with pytest.raises(DataFormatError, match=message) as caught:
        read_fashion200k_images(root, "test")
    error = caught.value
    assert error.path == root / "labels" / f"{category}_test_detect_all.txt"
    assert (error.line, error.field) == (2, field)
    assert f"{category}_test_detect_all.txt, line 2, field '{field}'" in str(error)


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        (f"{D}/1/1_0.jpeg", "target", "expected 2 whitespace-separated image paths"),
        (f"{D}/1/1_0.jpeg {D}/2/2_0.jpeg {D}/3/3_0.jpeg", "target", "got 3"),
        (f"{D}/8/8_0.jpeg {D}/2/2_0.jpeg", "reference", "not in the test label files"),
        (f"{D}/1/1_0.jpeg {D}/8/8_0.jpeg", "target", "not in the test label files"),
    ],
)
def test_malformed_test_query_names_file_line_and_field(tmp_path, line, field, message):
    root = write_root(tmp_path / "f", TEST_LABELS, queries=[TEST_QUERIES[0], "", line])
    gallery = unique_images(root, read_fashion200k_images(root, "test"), "test")
    with pytest.raises(DataFormatError, match=message) as caught:
        build_test_queries(root, gallery)
    assert (caught.value.path, caught.value.line, caught.value.field) == (root / "test_queries.txt", 3, field)


def test_an_image_listed_twice_with_two_descriptions_is_an_error(tmp_path):
    labels = {k: list(v) for k, v in TEST_LABELS.items()}
    labels["top"].append(f"{D}/1/1_0.jpeg\t0.9\tblack leopard print dress")  # same again: dropped
    root = write_root(tmp_path / "same", labels)
    assert len(unique_images(root, read_fashion200k_images(root, "test"), "test")) == 5
    labels["top"].append(f"{D}/2/2_0.jpeg\t0.9\tblue dress")
    root = write_root(tmp_path / "other", labels)
    with pytest.raises(DataFormatError, match="another description") as caught:
        unique_images(root, read_fashion200k_images(root, "test"), "test")
    assert (caught.value.line, caught.value.field) == (5, "description")  # the blank line 3 counts


# ---------------------------------------------------------------- hit by description

# gallery (x, y), label:      g0 (0.9, 0) A   g1 (0.8, 0.5) B   g2 (0.5, 0.25) C   g3 (0.7, 0.25) C
#                             g4 (0.6, 0.75) B
# q0 = (1, 0), ref g0, target g2 (C): g1 .8, g3 .7, g4 .6, g2 .5 -> first C is g3: rank 1 (g2 itself: 3)
# q1 = (1, 0), ref g1, target g4 (B): g0 .9, g3 .7, g4 .6 -> g1 is B but excluded: rank 2
# q2 = (1, 0), ref g0, target g0's label A: the only A is the reference -> no hit (-1)
# q3 = (0, 1), ref g4, target g3 (C): g1 .5, g2 .25, g3 .25 (tie: lower index first), g0 0 -> g2: rank 1
GALLERY = torch.tensor([[0.9, 0.0], [0.8, 0.5], [0.5, 0.25], [0.7, 0.25], [0.6, 0.75]])
LABELS = ["A", "B", "C", "C", "B"]
QUERIES = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
REFERENCES, TARGETS = [0, 1, 0, 4], [2, 4, 0, 3]


@pytest.mark.parametrize("gallery_chunk", [None, 1, 2, 3])
def test_hit_by_description_ranking_worked_by_hand(gallery_chunk):
    groups = ([0, 1, 2, 2, 1], [[0, 1, 2, 2, 1][t] for t in TARGETS])
    ranking = rank(
        QUERIES, GALLERY, k=3, exclude=[[r] for r in REFERENCES], groups=groups, gallery_chunk=gallery_chunk,
        query_chunk=3,
    )  # fmt: skip
    assert ranking.target_rank.tolist() == [1, 2, -1, 1]
    assert ranking.top_indices.tolist() == [[1, 3, 4], [0, 3, 4], [1, 3, 4], [1, 2, 3]]
    exact = rank(QUERIES, GALLERY, k=3, targets=TARGETS, exclude=[[r] for r in REFERENCES])
    assert exact.target_rank.tolist() == [3, 2, -1, 2]  # the target image itself, for contrast


def test_task_metrics_count_hits_by_description():
    from coir.eval.metrics import recall_at_k, recall_with_average
    from coir.eval.tasks import Query, Task

    names = [f"g{i}" for i in range(5)]
    queries = [
        Query(str(i), names[r], Path(names[r]), "t", names[t], exclude=(names[r],))
        for i, (r, t) in enumerate(zip(REFERENCES, TARGETS, strict=True))
    ]
    task = Task(
        "fashion200k", "test", "fashion200k/test", names, [Path(n) for n in names], queries, (1, 10, 50)
    )
    task.gallery_labels = LABELS
    groups = task.hit_groups(queries)
    assert groups == ([0, 1, 2, 2, 1], [2, 1, 0, 2])
    ranking = rank(QUERIES, GALLERY, k=3, exclude=[[r] for r in REFERENCES], groups=groups)
    assert recall_at_k(ranking.target_rank, (1, 2, 3)) == {"R@1": 0.0, "R@2": 50.0, "R@3": 75.0}
    assert recall_with_average(ranking.target_rank, (1, 10, 50)) == {
        "R@1": 0.0,
        "R@10": 75.0,
        "R@50": 75.0,
        "avg": 50.0,
    }
    assert task.is_hit(queries[0], "g3") and not task.is_hit(queries[0], "g1")


def test_group_ranking_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    n_q, n_g = 23, 41
    queries = torch.randint(-3, 4, (n_q, 4), generator=gen).float()  # small integers: many exact ties
    gallery = torch.randint(-3, 4, (n_g, 4), generator=gen).float()
    gallery_groups = torch.randint(0, 6, (n_g,), generator=gen).tolist()
    target_groups = torch.randint(-1, 7, (n_q,), generator=gen).tolist()  # 6: a group with no image
    exclude = [[int(i) for i in torch.randint(0, n_g, (2,), generator=gen)] for _ in range(n_q)]
    scores = (queries @ gallery.T).numpy()
    expected = []
    for q in range(n_q):
        order = [g for g in sorted(range(n_g), key=lambda g: (-scores[q, g], g)) if g not in exclude[q]]
        hits = [i for i, g in enumerate(order) if gallery_groups[g] == target_groups[q] >= 0]
        expected.append(hits[0] if hits else -1)
    for query_chunk, gallery_chunk in ((64, None), (5, 7), (1, 1)):
        ranking = rank(
            queries, gallery, k=10, exclude=exclude, groups=(gallery_groups, target_groups),
            query_chunk=query_chunk, gallery_chunk=gallery_chunk,
        )  # fmt: skip
        assert ranking.target_rank.tolist() == expected
    assert np.sum(np.array(expected) >= 0) > n_q // 2

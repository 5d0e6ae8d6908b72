"""Metrics and ranking on hand-worked cases: ties, reference removal, subsets, FashionIQ means."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from coir.datasets.fashioniq import join_fashioniq_captions
from coir.eval.benchmarks import get_benchmark
from coir.eval.benchmarks.cirr import cirr_metrics
from coir.eval.metrics import mean_metrics, recall_at_k, recall_with_average
from coir.eval.ranking import rank, stable_topk
from coir.eval.report import read_results, results_markdown, write_results


def rank_rows(rows: list[list[float]], **kwargs) -> object:
    """Rank with the given score rows: queries = rows, gallery = identity, so scores = rows."""
    scores = torch.tensor(rows, dtype=torch.float32)
    return rank(scores, torch.eye(scores.shape[1]), **kwargs)


def test_recall_counts_ranks_below_k_and_missing_targets_as_misses():
    ranks = [0, 3, -1, 9]
    assert recall_at_k(ranks, (1, 5, 10)) == {"R@1": 25.0, "R@5": 50.0, "R@10": 75.0}


def test_ties_go_to_the_lower_gallery_index():
    # gallery 1, 2 and 4 tie at 0.9: order 1, 2, 4, then 0, then 3
    result = rank_rows([[0.5, 0.9, 0.9, 0.1, 0.9]], k=5, targets=[4])
    assert result.top_indices[0].tolist() == [1, 2, 4, 0, 3]
    assert result.target_rank.tolist() == [2]
    top2 = rank_rows([[0.5, 0.9, 0.9, 0.1, 0.9]], k=2, targets=[4])
    assert top2.top_indices[0].tolist() == [1, 2]
    assert top2.target_rank.tolist() == [2]  # the rank is exact even outside the kept top-k


def test_reference_removed_from_ranking_and_from_counts():
    # the reference (index 0) scores highest; the target (3) is second overall, first without it
    rows = [[1.0, 0.2, 0.3, 0.8, 0.8]]
    kept = rank_rows(rows, k=4, targets=[3])
    removed = rank_rows(rows, k=4, targets=[3], exclude=[[0]])
    assert kept.target_rank.tolist() == [1]
    assert removed.target_rank.tolist() == [0]
    assert removed.top_indices[0].tolist() == [3, 4, 2, 1]  # 3 and 4 tie: lower index first
    short = rank_rows(rows, k=5, targets=[3], exclude=[[0]])
    assert short.top_indices[0].tolist() == [3, 4, 2, 1, -1]  # only 4 candidates remain


def test_excluded_target_is_a_miss():
    result = rank_rows([[0.1, 0.9]], k=2, targets=[1], exclude=[[1]])
    assert result.target_rank.tolist() == [-1]


def test_subset_recall_ranks_only_members_minus_reference():
    # gallery: 0 = reference (top score), 1-3 non-members that outscore everything else,
    # members 4..8 (reference excluded from the subset), target 7
    rows = [[9.0, 8.0, 8.0, 8.0, 0.1, 0.5, 0.2, 0.4, 0.3]]
    result = rank_rows(rows, k=5, targets=[7], exclude=[[0]], subsets=[[4, 5, 6, 7, 8]])
    assert result.subset_order[0].tolist() == [5, 7, 8, 6, 4]
    assert result.subset_target_rank.tolist() == [1]
    assert result.target_rank.tolist() == [4]  # behind 1, 2, 3 and member 5
    metrics = cirr_metrics(result.target_rank, result.subset_target_rank)
    assert metrics["R@1"] == 0.0 and metrics["R@5"] == 100.0
    assert metrics["Rs@1"] == 0.0 and metrics["Rs@2"] == 100.0 and metrics["Rs@3"] == 100.0
    assert metrics["avg"] == 50.0
    assert get_benchmark("cirr").main_measure(metrics) == 50.0


def test_subset_ties_follow_the_same_rule():
    rows = [[0.0, 0.5, 0.5, 0.5]]
    result = rank_rows(rows, k=3, targets=[3], subsets=[[3, 1, 2]])  # listed out of order
    assert result.subset_order[0].tolist() == [1, 2, 3]
    assert result.subset_target_rank.tolist() == [2]


def test_fashioniq_metrics_and_mean_over_categories():
    dress = recall_with_average(np.array([0, 9, 10, 49, 50, -1, 3, 70]), (10, 50))  # R@10 3/8, R@50 5/8
    assert dress == {"R@10": 37.5, "R@50": 62.5, "avg": 50.0}
    shirt = recall_with_average(np.array([0, 0, 0, 0]), (10, 50))
    toptee = recall_with_average(np.array([60, 60]), (10, 50))
    assert mean_metrics([dress, shirt, toptee])["R@10"] == pytest.approx((37.5 + 100 + 0) / 3)
    fashioniq = get_benchmark("fashioniq")
    counted = [dress | {"queries": 8}, shirt | {"queries": 4}, toptee | {"queries": 2}]
    mean = fashioniq.summary(counted)  # the "fashioniq/<split>" row
    assert mean == pytest.approx({"R@10": 137.5 / 3, "R@50": 162.5 / 3, "avg": 150 / 3, "queries": 14})
    assert list(mean) == ["R@10", "R@50", "avg", "queries"]  # the column order of the tables
    assert fashioniq.main_measure(mean) == pytest.approx((137.5 / 3 + 162.5 / 3) / 2)
    assert fashioniq.summary([{"queries": 5}, {"queries": 7}]) is None  # test split: no targets, no row


def test_fashioniq_caption_join_as_clip4cir():
    assert join_fashioniq_captions(["is shiny and silver.", " fit and flare?"]) == (
        "Is shiny and silver and fit and flare"
    )
    # str.capitalize lower-cases the rest of the first caption, as CLIP4Cir's code does
    assert join_fashioniq_captions(["Has a LOGO, ", "is Blue"]) == "Has a logo and is Blue"
    assert join_fashioniq_captions(["a", "b"], "{c2}; {c1}") == "b; A"


@pytest.mark.parametrize("seed", range(4))
def test_chunked_topk_equals_stable_full_sort_with_ties(seed):
    generator = torch.Generator().manual_seed(seed)
    queries = torch.randint(-2, 3, (37, 4), generator=generator).float()  # integer scores: many ties
    gallery = torch.randint(-2, 3, (211, 4), generator=generator).float()
    full = torch.sort(queries @ gallery.T, dim=1, descending=True, stable=True).indices
    targets = torch.randint(0, 211, (37,), generator=generator)
    expected_rank = (full == targets[:, None]).int().argmax(dim=1)
    for query_chunk, gallery_chunk in ((5, 13), (64, None), (1, 211)):
        result = rank(
            queries,
            gallery,
            k=50,
            targets=targets.tolist(),
            query_chunk=query_chunk,
            gallery_chunk=gallery_chunk,
        )
        assert np.array_equal(result.top_indices, full[:, :50].numpy())
        assert np.array_equal(result.target_rank, expected_rank.numpy())
    values, indices = stable_topk(queries @ gallery.T, 211)
    assert torch.equal(indices, full)


def _reference_ranking(scores, k, targets, exclude, subsets):
    """What rank() must return, from a stable full sort of each row (excluded columns removed)."""
    tops, target_ranks, subset_orders, subset_ranks = [], [], [], []
    for row, target, excluded, subset in zip(scores.tolist(), targets, exclude, subsets, strict=True):
        kept = [i for i in range(len(row)) if i not in excluded]
        order = sorted(kept, key=lambda i: (-row[i], i))  # stable: ties by the lower index
        tops.append((order + [-1] * k)[:k])
        target_ranks.append(order.index(target) if target in order else -1)
        by_score = sorted(subset, key=lambda i: (-row[i], i))
        subset_orders.append(by_score)
        subset_ranks.append(by_score.index(target) if target in by_score else -1)
    return tops, target_ranks, subset_orders, subset_ranks


@pytest.mark.parametrize(("seed", "n_gallery"), [(0, 211), (1, 211), (2, 97), (3, 30)])
def test_randomised_rank_equals_full_sort_with_exclusions_subsets_and_chunks(seed, n_gallery):
    rng = np.random.default_rng(seed)
    n_queries, k = 41, 50
    queries = torch.as_tensor(rng.integers(-2, 3, (n_queries, 3)), dtype=torch.float32)  # many ties
    gallery = torch.as_tensor(rng.integers(-2, 3, (n_gallery, 3)), dtype=torch.float32)
    targets = rng.integers(-1, n_gallery, n_queries).tolist()
    exclude, subsets = [], []
    for q in range(n_queries):
        picked = rng.choice(n_gallery, size=9, replace=False).tolist()
        n_excluded = int(rng.integers(0, 4))
        if targets[q] >= 0 and rng.random() < 0.2:  # sometimes the target itself is removed
            picked = [targets[q], *[i for i in picked if i != targets[q]]]
        exclude.append(picked[:n_excluded])
        subset = picked[n_excluded : n_excluded + int(rng.integers(0, 6))]
        if targets[q] >= 0 and targets[q] not in exclude[-1] and rng.random() < 0.7:
            subset = list(dict.fromkeys([*subset, targets[q]]))
        subsets.append(subset)
    tops, target_ranks, subset_orders, subset_ranks = _reference_ranking(
        queries @ gallery.T, k, targets, exclude, subsets
    )
    width = max(len(s) for s in subsets)
    padded_orders = [order + [-1] * (width - len(order)) for order in subset_orders]
    for query_chunk, gallery_chunk in ((7, 1), (7, 13), (64, 50), (3, n_gallery), (41, None)):
        result = rank(
            queries,
            gallery,
            k=k,
            targets=targets,
            exclude=exclude,
            subsets=subsets,
            query_chunk=query_chunk,
            gallery_chunk=gallery_chunk,
        )
        case = (query_chunk, gallery_chunk)
        assert result.top_indices.tolist() == tops, case
        assert result.target_rank.tolist() == target_ranks, case
        assert result.subset_order.tolist() == padded_orders, case
        assert result.subset_target_rank.tolist() == subset_ranks, case


def test_results_merge_keeps_other_entries(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"lasco/val": {"old": {"R@1": 1.0}}, "cirr/val": {"zs": {"R@1": 2.0}}}))
    merged = write_results(path, {"cirr/val": {"case": {"R@1": 12.345678, "queries": 4181}}})
    assert merged == read_results(path)
    assert merged["lasco/val"] == {"old": {"R@1": 1.0}}
    assert merged["cirr/val"]["zs"] == {"R@1": 2.0}
    assert merged["cirr/val"]["case"] == {"R@1": 12.3457, "queries": 4181}
    write_results(path, {"cirr/val": {"case": {"R@5": 3.0}}})  # a model's entry is replaced whole
    assert read_results(path)["cirr/val"]["case"] == {"R@5": 3.0}
    table = results_markdown(read_results(path))
    assert "### cirr/val" in table and "| zs | 2 |" in table.replace("2.00", "2")


def _joint_score(query: dict, gallery: dict) -> torch.Tensor:
    """A late-fusion score over tree states: a per-query weight and a per-candidate bias."""
    return (query["text"] @ gallery["image"].T) * query["weight"][:, None] + gallery["bias"]["value"][None, :]


@pytest.mark.parametrize("seed", range(2))
def test_tree_states_rank_like_the_full_sort_under_any_chunking(seed):
    generator = torch.Generator().manual_seed(seed)
    queries = {
        "text": torch.randint(-2, 3, (29, 4), generator=generator).float(),
        "weight": torch.randint(1, 3, (29,), generator=generator).float(),
    }
    gallery = {
        "image": torch.randint(-2, 3, (173, 4), generator=generator).float(),
        "bias": {"value": torch.randint(0, 2, (173,), generator=generator).float()},
    }
    scores = _joint_score(queries, gallery)
    targets = torch.randint(0, 173, (29,), generator=generator).tolist()
    exclude = [[(t + 5) % 173] if i % 3 == 0 else [] for i, t in enumerate(targets)]
    subsets = [[(t + j) % 173 for j in range(4)] for t in targets]
    expected = _reference_ranking(scores, 20, targets, exclude, subsets)
    for query_chunk, gallery_chunk in ((4, 9), (29, None), (1, 173), (7, 60)):
        result = rank(
            queries,
            gallery,
            k=20,
            targets=targets,
            exclude=exclude,
            subsets=subsets,
            score_fn=_joint_score,
            query_chunk=query_chunk,
            gallery_chunk=gallery_chunk,
        )
        assert np.array_equal(result.top_indices, expected[0])
        assert np.array_equal(result.target_rank, expected[1])
        assert np.array_equal(result.subset_target_rank, expected[3])


@pytest.mark.parametrize(
    ("queries", "gallery", "score_bytes", "budget"),
    [(5000, 40000, 0, 2**30), (5000, 40000, 48, 2**24), (10, 100, 0, 2**30), (3000, 50000, 2048, 2**20)],
)
def test_chunk_sizes_fit_the_budget(queries, gallery, score_bytes, budget):
    from coir.eval.ranking import RANK_BYTES_PER_PAIR, chunk_sizes

    query_chunk, gallery_chunk = chunk_sizes(queries, gallery, score_bytes, budget)
    assert 1 <= query_chunk <= min(queries, 1024) and 1 <= gallery_chunk <= gallery
    assert query_chunk * gallery_chunk * (RANK_BYTES_PER_PAIR + score_bytes) <= budget
    if queries * gallery * (RANK_BYTES_PER_PAIR + score_bytes) <= budget:
        assert (query_chunk, gallery_chunk) == (queries, gallery)  # fits: one block


def test_chunk_sizes_keep_the_gallery_whole_while_enough_queries_fit():
    from coir.eval.ranking import MIN_QUERY_CHUNK, RANK_BYTES_PER_PAIR, chunk_sizes

    budget = 2**28  # 14.9 M pairs: 372 queries x 40,000 columns
    query_chunk, gallery_chunk = chunk_sizes(5000, 40000, 0, budget)
    assert gallery_chunk == 40000 and MIN_QUERY_CHUNK <= query_chunk < 1024
    assert budget - 40000 * RANK_BYTES_PER_PAIR < query_chunk * 40000 * RANK_BYTES_PER_PAIR <= budget
    # fewer than MIN_QUERY_CHUNK queries fit beside the whole gallery: the gallery is split instead
    query_chunk, gallery_chunk = chunk_sizes(5000, 40000, 0, 2**24)
    assert gallery_chunk < 40000 and query_chunk * gallery_chunk * RANK_BYTES_PER_PAIR <= 2**24


@pytest.mark.parametrize("g0", [0, 40, 100])
def test_target_counts_of_the_cpu_and_accelerator_versions_agree(g0):
    """The CPU counts rows with numpy, accelerators count the block in torch: same counts, ties and
    targets before, inside and after the chunk, and rows without a target, included."""
    from coir.eval.ranking import _count_before_by_block, _count_before_by_row

    rng = np.random.default_rng(g0)
    scores = torch.as_tensor(rng.integers(-3, 4, (60, 80)), dtype=torch.float32)  # many ties
    target = torch.as_tensor(rng.integers(-1, 200, 60))
    target_score = torch.as_tensor(rng.integers(-3, 4, 60), dtype=torch.float32)
    inside = (target >= g0) & (target < g0 + 80)
    target_score[inside] = scores[inside.nonzero().squeeze(1), target[inside] - g0]
    by_row = _count_before_by_row(scores, target, target_score, g0)
    assert torch.equal(by_row, _count_before_by_block(scores, target, target_score, g0))
    for row in range(60):  # and both are the tie rule, counted by hand
        if target[row] < 0:
            assert by_row[row] == 0
            continue
        value, index = target_score[row], target[row]
        row_scores = scores[row].tolist()
        before = sum(1 for c, s in enumerate(row_scores) if s > value or (s == value and g0 + c < index))
        assert by_row[row] == before

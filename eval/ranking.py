"""Chunked top-k ranking of queries against a gallery, exact under one tie rule.

Tie rule (everywhere in coir.eval): a higher score ranks first; equal scores rank by the LOWER
gallery index first. This is what a stable descending sort of each row gives, so the output equals
the first k columns of `torch.sort(scores, descending=True, stable=True)` — never computed here.

The similarity matrix is never materialised: queries are processed `query_chunk` rows at a time
against `gallery_chunk` columns at a time, so memory is bounded by query_chunk x gallery_chunk
pairs (`chunk_sizes` picks both from a memory budget and what one pair costs the model's score).
Query and gallery states may be any tree of tensors (coir.pipeline.models.state); only the
model's score function looks inside them. Per chunk we keep the running top-k, the exact rank of
each query's target (counts are additive across gallery chunks), and the scores of each query's
subset members (CIRR).

A target is one gallery image, or, with target groups, any gallery image of the query's target
group (Fashion200k: every image whose description is the target's): its rank is then that of the
group's first image under the tie rule, found in the same first pass (highest score, lowest index).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from coir.pipeline.models.state import State, leaves, tree_len, tree_slice

ScoreFn = Callable[[State, State], torch.Tensor]
NEG_INF = float("-inf")
# working memory of the ranking itself per (query, candidate) pair: the float32 score block plus
# the boolean masks and comparisons of the exact target-rank pass (measured: benchmarks/rank_joint.py)
RANK_BYTES_PER_PAIR = 18
# with target groups, per pair at most: the masked copy of the scores, the equality mask and the
# int32 positions of the group's first image
GROUP_BYTES_PER_PAIR = 10
MIN_GALLERY_CHUNK = 256
# below this many queries per chunk the score matmul loses efficiency (chunk_sizes)
MIN_QUERY_CHUNK = 128


def chunk_sizes(
    n_queries: int, n_gallery: int, score_bytes_per_pair: int, memory_bytes: int, max_query_chunk: int = 1024
) -> tuple[int, int]:
    """(query_chunk, gallery_chunk) whose working set, query_chunk x gallery_chunk pairs at
    RANK_BYTES_PER_PAIR + score_bytes_per_pair each, fits `memory_bytes`. Prefers the whole gallery
    in one chunk, with fewer queries (down to MIN_QUERY_CHUNK), because a split gallery costs top-k
    merges and a second scoring pass for targets outside the top k; below that, long gallery chunks
    with the query chunk shrunk only when even MIN_GALLERY_CHUNK columns do not fit.
    The states themselves (the whole gallery, one query chunk) are not counted."""
    per_pair = RANK_BYTES_PER_PAIR + max(0, int(score_bytes_per_pair))
    pairs = max(1, int(memory_bytes) // per_pair)
    query_chunk = max(1, min(n_queries, max_query_chunk))
    whole_gallery_queries = pairs // max(n_gallery, 1)
    if whole_gallery_queries >= min(query_chunk, MIN_QUERY_CHUNK):
        return min(query_chunk, whole_gallery_queries), max(n_gallery, 1)
    gallery_floor = min(max(n_gallery, 1), MIN_GALLERY_CHUNK)
    if query_chunk * gallery_floor > pairs:
        query_chunk = max(1, pairs // gallery_floor)
    gallery_chunk = max(1, min(max(n_gallery, 1), pairs // query_chunk))
    return query_chunk, gallery_chunk


def dot_score(query_state: torch.Tensor, gallery_state: torch.Tensor) -> torch.Tensor:
    return query_state @ gallery_state.T


def order_by_tie_rule(values: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder each row by (value descending, index ascending)."""
    by_index = torch.argsort(indices, dim=1, stable=True)
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    by_value = torch.argsort(values, dim=1, descending=True, stable=True)
    return values.gather(1, by_value), indices.gather(1, by_value)


def _sorted_to_tie_rule(values: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.topk's sorted output in tie-rule order. Its values already descend, so only rows with
    equal neighbours (ties, rare) can be out of order: those alone are reordered."""
    tied = (values[:, 1:] == values[:, :-1]).any(dim=1).nonzero().squeeze(1)
    if len(tied):
        values, indices = values.clone(), indices.clone()
        values[tied], indices[tied] = order_by_tie_rule(values[tied], indices[tied])
    return values, indices


def stable_topk(scores: torch.Tensor, k: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row of `scores` [Q, N] under the tie rule; indices are shifted by `offset`.

    torch.topk returns the right values but an arbitrary choice among ties at the k-th value.
    Taking k+1 shows where that can happen: a row whose (k+1)-th value equals its k-th has a tie
    straddling the cut. Only such rows are redone, without sorting them: every element above the
    k-th value is in, and the remaining places go to the lowest-indexed elements equal to it.
    """
    n = scores.shape[1]
    k = min(k, n)
    if k == 0:
        empty = scores.new_empty((scores.shape[0], 0))
        return empty, torch.empty_like(empty, dtype=torch.long)
    values, indices = torch.topk(scores, min(k + 1, n), dim=1, largest=True, sorted=True)
    if torch.isnan(values[:, 0]).any():  # topk ranks NaN above everything: row maxima reveal it
        raise FloatingPointError("the model produced NaN similarity scores")
    straddling = (
        values[:, k] == values[:, k - 1] if k < n else torch.zeros_like(values[:, 0], dtype=torch.bool)
    )
    values, indices = _sorted_to_tie_rule(values[:, :k], indices[:, :k])
    if straddling.any():
        rows = straddling.nonzero().squeeze(1)
        tied_rows = scores[rows]
        kth = values[rows, k - 1 : k]
        above = tied_rows > kth
        equal = tied_rows == kth
        places = k - above.sum(dim=1, keepdim=True)
        chosen = above | (equal & (equal.cumsum(dim=1) <= places))  # exactly k per row
        chosen_indices = chosen.nonzero(as_tuple=True)[1].view(len(rows), k)
        exact_values, exact_indices = order_by_tie_rule(tied_rows.gather(1, chosen_indices), chosen_indices)
        values[rows] = exact_values
        indices[rows] = exact_indices
    return values, indices + offset


def pad_index_lists(lists: list[list[int]] | None, rows: int) -> torch.Tensor:
    """Ragged per-query index lists -> LongTensor [rows, width] padded with -1."""
    if not lists:
        return torch.full((rows, 0), -1, dtype=torch.long)
    width = max((len(x) for x in lists), default=0)
    out = torch.full((rows, width), -1, dtype=torch.long)
    for row, items in enumerate(lists):
        if items:
            out[row, : len(items)] = torch.as_tensor(items, dtype=torch.long)
    return out


@dataclass
class Ranking:
    """Per-query ranking outputs (numpy, gallery indices)."""

    top_indices: np.ndarray  # [Q, k] int64, -1 where the gallery has fewer candidates
    top_scores: np.ndarray  # [Q, k] float32
    target_rank: np.ndarray  # [Q] int64, 0-based; -1 when the query has no target in the gallery
    # (with target groups: the rank of the group's first image; -1 when none is rankable)
    subset_order: np.ndarray  # [Q, S] int64 subset members in ranked order, -1 padded
    subset_target_rank: np.ndarray  # [Q] int64, 0-based within the subset; -1 when absent


def rank(
    query_states: State,
    gallery_states: State,
    k: int = 50,
    targets: list[int] | None = None,
    exclude: list[list[int]] | None = None,
    subsets: list[list[int]] | None = None,
    score_fn: ScoreFn = dot_score,
    query_chunk: int = 1024,
    gallery_chunk: int | None = None,
    groups: tuple[list[int], list[int]] | None = None,
) -> Ranking:
    """Rank every query against the gallery in chunks.

    targets: gallery index of each query's target (-1: none). exclude: gallery indices removed
    from a query's ranking (CIRR: the reference). subsets: gallery indices of a query's subset
    (CIRR: the img_set members minus the reference), ranked among themselves by the same rule.
    groups: (group of every gallery image, target group of each query or -1): a query's target is
    then its group's first-ranked image that is not excluded, and `targets` is not used.
    gallery_chunk: columns scored at a time (None: the whole gallery); the result does not depend
    on it, nor on query_chunk.
    """
    n_queries = 0 if query_states is None else tree_len(query_states)  # None: no queries on this rank
    n_gallery = tree_len(gallery_states)
    if not n_queries:
        empty = np.zeros((0, k), dtype=np.int64)
        return Ranking(empty, empty.astype(np.float32), empty[:, 0], empty[:, :0], empty[:, 0])
    gallery_chunk = gallery_chunk or max(n_gallery, 1)
    device = leaves(query_states)[0].device
    target_t = torch.as_tensor(targets if targets is not None else [-1] * n_queries, dtype=torch.long)
    target_t = target_t.to(device)
    if groups is not None:
        gallery_group_t = torch.as_tensor(groups[0], dtype=torch.long, device=device)
        target_group_t = torch.as_tensor(groups[1], dtype=torch.long, device=device)
    exclude_t = pad_index_lists(exclude, n_queries).to(device)
    subset_t = pad_index_lists(subsets, n_queries).to(device)
    k_search = min(k + exclude_t.shape[1], n_gallery)

    tops, top_values, ranks, subset_orders, subset_ranks = [], [], [], [], []
    for q0 in range(0, n_queries, query_chunk):
        q1 = min(q0 + query_chunk, n_queries)
        queries = tree_slice(query_states, q0, q1)
        rows = q1 - q0
        target_group = target_group_t[q0:q1] if groups is not None else None
        # with groups the target is found in the first pass
        target = target_t[q0:q1] if groups is None else torch.full((rows,), -1, device=device)
        excluded = exclude_t[q0:q1]
        subset = subset_t[q0:q1]
        # scores of each query's target and subset members, collected chunk by chunk
        target_score = torch.full((rows,), NEG_INF, device=device)
        subset_score = torch.full(subset.shape, NEG_INF, device=device)
        best_values = torch.empty((rows, 0), device=device)
        best_indices = torch.empty((rows, 0), dtype=torch.long, device=device)
        chunks = [(g0, min(g0 + gallery_chunk, n_gallery)) for g0 in range(0, n_gallery, gallery_chunk)]
        kept: torch.Tensor | None = None
        for g0, g1 in chunks:
            scores = _chunk_scores(score_fn, queries, gallery_states, excluded, g0, g1)
            if target_group is not None:
                _best_member(scores, gallery_group_t[g0:g1], target_group, g0, target, target_score)
            in_chunk = (target >= g0) & (target < g1)
            if target_group is None and in_chunk.any():
                r = in_chunk.nonzero().squeeze(1)
                target_score[r] = scores[r, target[r] - g0]
            members = (subset >= g0) & (subset < g1)
            if members.any():
                r, c = members.nonzero(as_tuple=True)
                subset_score[r, c] = scores[r, subset[r, c] - g0]
            values, indices = stable_topk(scores, k_search, offset=g0)
            best_values, best_indices = _merge_topk(best_values, best_indices, values, indices, k_search)
            kept = scores if len(chunks) == 1 else None
            del scores, values, indices  # before the next block is allocated: one block at a time
        # the exact target rank needs the target's score, known only after the first pass
        if not bool((target >= 0).any()):
            higher = torch.zeros(rows, dtype=torch.long, device=device)
        elif kept is not None:
            higher = _count_before(kept, target, target_score, 0)
        else:
            higher = _ranks_across_chunks(
                score_fn, queries, gallery_states, excluded, chunks, best_indices, target, target_score
            )
        kept = None
        has_target = (target >= 0) & ~(excluded == target[:, None]).any(dim=1)
        ranks.append(torch.where(has_target, higher, torch.full_like(higher, -1)))
        top_i, top_v = _drop_excluded(best_indices, best_values, excluded, k)
        tops.append(top_i)
        top_values.append(top_v)
        order, subset_rank = _rank_subset(subset, subset_score, target)
        subset_orders.append(order)
        subset_ranks.append(subset_rank)
    if not n_queries:
        empty = np.zeros((0, k), dtype=np.int64)
        return Ranking(empty, empty.astype(np.float32), empty[:, 0], empty[:, :0], empty[:, 0])
    return Ranking(
        top_indices=torch.cat(tops).cpu().numpy(),
        top_scores=torch.cat(top_values).cpu().numpy(),
        target_rank=torch.cat(ranks).cpu().numpy(),
        subset_order=torch.cat(subset_orders).cpu().numpy(),
        subset_target_rank=torch.cat(subset_ranks).cpu().numpy(),
    )


def _count_before(
    scores: torch.Tensor, target: torch.Tensor, target_score: torch.Tensor, g0: int
) -> torch.Tensor:
    """Per row, how many of the chunk's columns (gallery indices from g0) rank before the target:
    a higher score, or an equal one at a lower index. Rows without a target count nothing."""
    if scores.device.type == "cpu":
        return _count_before_by_row(scores, target, target_score, g0)
    return _count_before_by_block(scores, target, target_score, g0)


def _count_before_by_row(
    scores: torch.Tensor, target: torch.Tensor, target_score: torch.Tensor, g0: int
) -> torch.Tensor:
    """The CPU version: one row at a time with numpy, while the row is in the cache (10x faster than
    the block's comparisons and reductions in torch at 1024 x 40,000; benchmarks/eval_encode.py)."""
    block, thresholds = scores.detach().numpy(), target_score.cpu().numpy()
    cuts = (target - g0).clamp(0, scores.shape[1]).cpu().numpy()  # columns before the target's index
    counts = np.zeros(len(block), dtype=np.int64)
    for row in np.flatnonzero(target.cpu().numpy() >= 0):
        values, threshold = block[row], thresholds[row]
        tied_before = np.count_nonzero(values[: cuts[row]] == threshold)
        counts[row] = np.count_nonzero(values > threshold) + tied_before
    return torch.from_numpy(counts).to(target.device)


def _count_before_by_block(
    scores: torch.Tensor, target: torch.Tensor, target_score: torch.Tensor, g0: int
) -> torch.Tensor:
    """The accelerator version: whole-block comparisons. Ties with the target are rare, so the index
    comparison runs only on the rows that have one."""
    threshold = target_score[:, None]
    higher = _row_counts(scores > threshold)
    equal = _row_counts(scores == threshold)
    inside = (target >= g0) & (target < g0 + scores.shape[1])
    tied = (equal > inside.long()).nonzero().squeeze(1)  # rows with an equal score besides the target
    if len(tied):
        columns = torch.arange(g0, g0 + scores.shape[1], device=scores.device)
        before = (scores[tied] == threshold[tied]) & (columns[None, :] < target[tied, None])
        higher[tied] += _row_counts(before)
    return torch.where(target >= 0, higher, 0)


def _row_counts(mask: torch.Tensor) -> torch.Tensor:
    """True entries per row. Summing the bool mask as uint8 into int32 avoids the int64 copy of the
    whole block that `sum` and `count_nonzero` make (half the ranking time at 1024 x 40,000)."""
    return mask.contiguous().view(torch.uint8).sum(dim=1, dtype=torch.int32).long()


def _ranks_across_chunks(
    score_fn: ScoreFn,
    queries: State,
    gallery_states: State,
    excluded: torch.Tensor,
    chunks: list[tuple[int, int]],
    best_indices: torch.Tensor,
    target: torch.Tensor,
    target_score: torch.Tensor,
) -> torch.Tensor:
    """Target ranks with a split gallery. A target in the merged top list ranks at its position there
    (the list is in tie-rule order over every column). When some other row has a target, the chunks
    are scored again and counted; the whole query chunk is rescored, never a subset of its rows,
    because a matmul of another shape may round differently and the target must meet its own
    first-pass score exactly. Memory stays bounded: no chunk is kept."""
    position = best_indices == target[:, None]
    found = position.any(dim=1)
    higher = torch.where(found, position.to(torch.int8).argmax(dim=1), 0)
    if not bool(((target >= 0) & ~found).any()):
        return higher
    counted = torch.zeros_like(higher)
    for g0, g1 in chunks:
        scores = _chunk_scores(score_fn, queries, gallery_states, excluded, g0, g1)
        counted += _count_before(scores, target, target_score, g0)
        del scores
    return torch.where(found, higher, counted)


def _best_member(
    scores: torch.Tensor,
    gallery_group: torch.Tensor,
    target_group: torch.Tensor,
    g0: int,
    target: torch.Tensor,
    target_score: torch.Tensor,
) -> None:
    """Update each query's (target, target_score) in place with the chunk's best image of its target
    group: a strictly higher score wins, so among equal scores the lowest gallery index stays.
    Excluded images score -inf and never win."""
    member = (gallery_group[None, :] == target_group[:, None]) & (target_group[:, None] >= 0)
    masked = scores.masked_fill(~member, NEG_INF)
    del member
    values = masked.amax(dim=1)
    positions = torch.arange(scores.shape[1], dtype=torch.int32, device=scores.device)
    first = torch.where(masked == values[:, None], positions, scores.shape[1]).amin(dim=1)
    del masked
    better = values > target_score
    target[better] = first[better].long() + g0
    target_score[better] = values[better]


def _chunk_scores(
    score_fn: ScoreFn,
    queries: State,
    gallery_states: State,
    excluded: torch.Tensor,
    g0: int,
    g1: int,
) -> torch.Tensor:
    scores = score_fn(queries, tree_slice(gallery_states, g0, g1)).float()
    _mask_columns(scores, excluded, g0, g1)
    return scores


def _mask_columns(scores: torch.Tensor, excluded: torch.Tensor, g0: int, g1: int) -> None:
    if excluded.numel() == 0:
        return
    inside = (excluded >= g0) & (excluded < g1)
    if inside.any():
        r, c = inside.nonzero(as_tuple=True)
        scores[r, excluded[r, c] - g0] = NEG_INF


def _merge_topk(
    values_a: torch.Tensor, indices_a: torch.Tensor, values_b: torch.Tensor, indices_b: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    if values_a.shape[1] == 0:
        return values_b, indices_b
    values = torch.cat([values_a, values_b], 1)
    values, indices = order_by_tie_rule(values, torch.cat([indices_a, indices_b], 1))
    return values[:, :k], indices[:, :k]


def _drop_excluded(
    indices: torch.Tensor, values: torch.Tensor, excluded: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove excluded gallery indices from the top lists, keep the first k, pad with -1."""
    if excluded.shape[1]:
        dropped = (indices[:, :, None] == excluded[:, None, :]).any(dim=2)
        keep_first = torch.argsort(dropped.to(torch.int8), dim=1, stable=True)
        indices, values = indices.gather(1, keep_first), values.gather(1, keep_first)
        dropped = dropped.gather(1, keep_first)
        indices = indices.masked_fill(dropped, -1)
        values = values.masked_fill(dropped, NEG_INF)
    indices, values = indices[:, :k], values[:, :k]
    if indices.shape[1] < k:
        pad = k - indices.shape[1]
        indices = torch.cat([indices, indices.new_full((indices.shape[0], pad), -1)], 1)
        values = torch.cat([values, values.new_full((values.shape[0], pad), NEG_INF)], 1)
    return indices, values


def _rank_subset(
    subset: torch.Tensor, subset_score: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if subset.shape[1] == 0:
        return subset, subset.new_full((subset.shape[0],), -1)
    # padding sorts last: lowest score and an index above every real one
    big = torch.iinfo(torch.long).max
    keys = subset.masked_fill(subset < 0, big)
    scores = subset_score.masked_fill(subset < 0, NEG_INF)
    _, ordered = order_by_tie_rule(scores, keys)
    ordered = ordered.masked_fill(ordered == big, -1)
    hit = (ordered == target[:, None]) & (target[:, None] >= 0)
    position = torch.where(hit.any(dim=1), hit.to(torch.int8).argmax(dim=1), torch.full_like(target, -1))
    return ordered, position

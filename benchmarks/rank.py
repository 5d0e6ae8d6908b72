"""Ranking speed: chunked top-k (coir.eval.ranking) against the full sort common research code does.

A LaSCo-val-sized problem with random embeddings: a 40,000-image gallery, D=256, and --queries
queries (30,000 at LaSCo val scale; the default is smaller so the run stays under ~2 minutes on
2 CPU cores). The baseline is what CIRR/FashionIQ research code does: the full similarity matrix
and an argsort of every row (`torch.argsort(-sims, dim=-1, stable=True)`, stable so that ties go
to the lower gallery index exactly as coir's tie rule says; negating keeps scores exact, whereas
`1 - sims` would create new ties by rounding). It sorts --baseline-block queries at a time so
that the 30,000 x 40,000 case fits in memory (the sorting work is the same; 0 = all at once).
Some gallery vectors are exact duplicates so that ties occur and their order is checked.
Each query gets a random target; both methods also give its exact 0-based rank (coir: counted
chunk by chunk; baseline: its position in the sorted row). Prints both times and the ratio, and
asserts identical top-k indices and identical target ranks; also the time of the bare similarity
matmul, which both include (the rest is ranking: top-k vs sort).

    python benchmarks/rank.py                    # default size
    python benchmarks/rank.py --queries 30000    # LaSCo val scale (the baseline takes minutes)
"""

from __future__ import annotations

import argparse
import time

import torch

from coir.eval.ranking import rank


def make_embeddings(n_gallery: int, n_queries: int, dim: int, duplicates: float, seed: int):
    generator = torch.Generator().manual_seed(seed)
    gallery = torch.nn.functional.normalize(torch.randn(n_gallery, dim, generator=generator), dim=1)
    n_dup = int(n_gallery * duplicates)
    if n_dup:
        source = torch.randint(0, n_gallery, (n_dup,), generator=generator)
        dest = torch.randint(0, n_gallery, (n_dup,), generator=generator)
        gallery[dest] = gallery[source]
    queries = torch.nn.functional.normalize(torch.randn(n_queries, dim, generator=generator), dim=1)
    # some queries equal a gallery vector, so duplicated images tie at the very top
    n_copy = n_queries // 10
    copied = torch.randint(0, n_gallery, (n_copy,), generator=generator)
    queries[:n_copy] = gallery[copied]
    # targets: random, except that a copied query's target is its copy (ties at rank 0 when duplicated)
    targets = torch.randint(0, n_gallery, (n_queries,), generator=generator)
    targets[:n_copy] = copied
    return queries, gallery, targets


def full_sort_topk(
    queries: torch.Tensor, gallery: torch.Tensor, k: int, block: int, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(top-k indices [Q, k], 0-based rank of each query's target [Q]) from fully sorted rows."""
    block = block or queries.shape[0]
    tops, ranks = [], []
    for start in range(0, queries.shape[0], block):
        sims = queries[start : start + block] @ gallery.T
        order = torch.argsort(-sims, dim=-1, stable=True)
        tops.append(order[:, :k])
        ranks.append((order == targets[start : start + block, None]).to(torch.int8).argmax(dim=1))
    return torch.cat(tops), torch.cat(ranks)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gallery", type=int, default=40_000)
    parser.add_argument("--queries", type=int, default=5_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--query-chunk", type=int, default=1024, help="coir: queries ranked at a time")
    parser.add_argument("--gallery-chunk", type=int, default=8192, help="coir: gallery columns at a time")
    parser.add_argument("--baseline-block", type=int, default=2048, help="baseline: queries sorted at a time")
    parser.add_argument("--duplicates", type=float, default=0.02, help="share of gallery rows duplicated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    queries, gallery, targets = make_embeddings(
        args.gallery, args.queries, args.dim, args.duplicates, args.seed
    )
    print(
        f"gallery {args.gallery} x {args.dim}, {args.queries} queries, top-{args.k}, "
        f"{torch.get_num_threads()} threads"
    )
    start = time.perf_counter()
    ours = rank(
        queries,
        gallery,
        k=args.k,
        targets=targets.tolist(),
        query_chunk=args.query_chunk,
        gallery_chunk=args.gallery_chunk,
    )
    t_ours = time.perf_counter() - start
    print(f"chunked top-k (coir.eval.ranking): {t_ours:8.2f} s")
    start = time.perf_counter()
    baseline_top, baseline_rank = full_sort_topk(queries, gallery, args.k, args.baseline_block, targets)
    t_base = time.perf_counter() - start
    print(f"full matrix + stable argsort:      {t_base:8.2f} s")
    assert (ours.top_indices == baseline_top.numpy()).all(), "chunked top-k differs from the full sort"
    assert (ours.target_rank == baseline_rank.numpy()).all(), "target ranks differ from the full sort"
    start = time.perf_counter()
    for q0 in range(0, args.queries, args.query_chunk):
        queries[q0 : q0 + args.query_chunk] @ gallery.T
    t_matmul = time.perf_counter() - start
    print(f"(the similarity matmul both share:  {t_matmul:8.2f} s)")
    print(
        f"identical top-{args.k} lists and target ranks for all {args.queries} queries; "
        f"speed-up x{t_base / t_ours:.1f}"
    )


if __name__ == "__main__":
    main()

"""Ranking speed: chunked top-k (coir.eval.ranking) against the full sort common research code does.

A LaSCo-val-sized problem with random embeddings: a 40,000-image gallery, D=256, and --queries
queries (30,000 at LaSCo val scale; the default is smaller so the run stays under ~2 minutes on
2 CPU cores). The baseline is what CIRR/FashionIQ research code does: the full similarity matrix
and an argsort of every row (`torch.argsort(-sims, dim=-1, stable=True)`, stable so that ties go
to the lower gallery index exactly as coir's tie rule says; negating keeps scores exact, whereas
`1 - sims` would create new ties by rounding). It sorts --baseline-block queries at a time so
that the 30,000 x 40,000 case fits in memory (the sorting work is the same; 0 = all at once).
Some gallery vectors are exact duplicates so that ties occur and their order is checked.
Prints both times and the ratio, and asserts identical top-k indices; also the time of the bare
similarity matmul, which both include (the rest is ranking: top-k vs sort).

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
    queries[:n_copy] = gallery[torch.randint(0, n_gallery, (n_copy,), generator=generator)]
    return queries, gallery


def full_sort_topk(queries: torch.Tensor, gallery: torch.Tensor, k: int, block: int) -> torch.Tensor:
    block = block or queries.shape[0]
    out = []
    for start in range(0, queries.shape[0], block):
        sims = queries[start : start + block] @ gallery.T
        out.append(torch.argsort(-sims, dim=-1, stable=True)[:, :k])
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gallery", type=int, default=40_000)
    parser.add_argument("--queries", type=int, default=5_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--query-chunk", type=int, default=1024, help="coir: queries ranked at a time")
    parser.add_argument("--baseline-block", type=int, default=2048, help="baseline: queries sorted at a time")
    parser.add_argument("--duplicates", type=float, default=0.02, help="share of gallery rows duplicated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    queries, gallery = make_embeddings(args.gallery, args.queries, args.dim, args.duplicates, args.seed)
    print(
        f"gallery {args.gallery} x {args.dim}, {args.queries} queries, top-{args.k}, "
        f"{torch.get_num_threads()} threads"
    )
    start = time.perf_counter()
    ours = rank(queries, gallery, k=args.k, query_chunk=args.query_chunk).top_indices
    t_ours = time.perf_counter() - start
    print(f"chunked top-k (coir.eval.ranking): {t_ours:8.2f} s")
    start = time.perf_counter()
    baseline = full_sort_topk(queries, gallery, args.k, args.baseline_block).numpy()
    t_base = time.perf_counter() - start
    print(f"full matrix + stable argsort:      {t_base:8.2f} s")
    assert (ours == baseline).all(), "chunked top-k differs from the full sort"
    start = time.perf_counter()
    for q0 in range(0, args.queries, args.query_chunk):
        queries[q0 : q0 + args.query_chunk] @ gallery.T
    t_matmul = time.perf_counter() - start
    print(f"(the similarity matmul both share:  {t_matmul:8.2f} s)")
    print(f"identical top-{args.k} lists for all {args.queries} queries; speed-up x{t_base / t_ours:.1f}")


if __name__ == "__main__":
    main()

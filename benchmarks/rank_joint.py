"""Memory-bounded ranking with a joint score: ARTEMIS against the dot-product path of the same size.

A 40,000-image gallery of random D=512 target embeddings, --queries random ARTEMIS query states (the
reference feature and the text's attentions; see coir.pipeline.models.artemis.model) and the same
number of random dot-product queries. Each path ranks every query against the whole gallery with
coir.eval.ranking.rank, its chunks sized by ranking.chunk_sizes from --memory-gb and the model's
score_bytes_per_pair, exactly as `coir eval --memory-gb` does. Each path runs in a fresh process, so
its peak resident memory above what it held before ranking (the states, the model, and the kernels a
small warm-up ranking loaded) is the ranking's working memory; it is printed against the budget, with
queries/s and the ratio to the dot product.

    python benchmarks/rank_joint.py                           # 40,000 gallery, 2,000 queries, 0.5 GiB
    python benchmarks/rank_joint.py --memory-gb 0.05 --queries 500
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def _run(kind: str, args: argparse.Namespace, out: mp.Queue) -> None:
    import torch

    from coir.eval.ranking import chunk_sizes, rank

    torch.manual_seed(args.seed)
    dim = args.dim
    gallery = torch.nn.functional.normalize(torch.randn(args.gallery, dim), dim=1)
    if kind == "artemis":
        from coir.datasets.vocab import Vocabulary
        from coir.pipeline.models.artemis.config import ArtemisModelConfig
        from coir.pipeline.models.artemis.model import Artemis

        cfg = ArtemisModelConfig(backbone="resnet18", embed_dim=dim, word_dim=16)
        model = Artemis(cfg, Vocabulary(["a"]), load_weights=False).eval()
        with torch.no_grad():
            reference = torch.nn.functional.normalize(torch.randn(args.queries, dim), dim=1)
            text = torch.nn.functional.normalize(torch.randn(args.queries, dim), dim=1)
            queries = model.query_state(reference, text)
        score_fn, per_pair = model.score, model.score_bytes_per_pair
    else:
        queries = torch.nn.functional.normalize(torch.randn(args.queries, dim), dim=1)
        score_fn, per_pair = (lambda q, g: q @ g.T), 0
    budget = int(args.memory_gb * 2**30)
    query_chunk, gallery_chunk = chunk_sizes(args.queries, args.gallery, per_pair, budget)
    targets = torch.randint(0, args.gallery, (args.queries,)).tolist()
    with torch.no_grad():  # warm-up: the kernels' code and the allocator's first pages are not ranking memory
        small = {"q": min(8, args.queries), "g": min(1000, args.gallery)}
        warm = (
            queries[: small["q"]]
            if isinstance(queries, torch.Tensor)
            else {k: v[: small["q"]] for k, v in queries.items()}
        )
        rank(warm, gallery[: small["g"]], k=50, score_fn=score_fn, query_chunk=4, gallery_chunk=500)
    before = _current_rss_bytes()
    start = time.perf_counter()
    with torch.no_grad():
        result = rank(
            queries,
            gallery,
            k=50,
            targets=targets,
            score_fn=score_fn,
            query_chunk=query_chunk,
            gallery_chunk=gallery_chunk,
        )
    seconds = time.perf_counter() - start
    assert result.top_indices.shape == (args.queries, 50)
    out.put(
        {
            "kind": kind,
            "seconds": seconds,
            "working_bytes": max(0, _peak_rss_bytes() - before),
            "chunks": (query_chunk, gallery_chunk),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gallery", type=int, default=40_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--memory-gb", type=float, default=0.5, help="ranking working-memory budget")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    print(
        f"gallery {args.gallery} x {args.dim}, {args.queries} queries, top-50, budget {args.memory_gb} GiB, "
        f"{torch.get_num_threads()} threads"
    )
    ctx = mp.get_context("spawn")
    results = {}
    for kind in ("dot", "artemis"):
        queue = ctx.Queue()
        proc = ctx.Process(target=_run, args=(kind, args, queue))
        proc.start()
        results[kind] = queue.get()
        proc.join()
    budget = args.memory_gb * 2**30
    for kind, r in results.items():
        qc, gc = r["chunks"]
        print(
            f"{kind:8s} chunks {qc} x {gc}: {args.queries / r['seconds']:9.1f} queries/s, working memory "
            f"{r['working_bytes'] / 2**20:7.1f} MiB = {r['working_bytes'] / budget:5.2f} x budget"
        )
    ratio = results["dot"]["seconds"] / results["artemis"]["seconds"]
    print(f"ARTEMIS joint scoring runs at {ratio:.2f}x the dot-product path's query rate")


if __name__ == "__main__":
    main()

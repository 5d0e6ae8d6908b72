"""TIRG's losses with targets (and, for the released soft triplet, queries) gathered across 2 processes
(gloo): the mean of the rank losses equals the one-process loss on the concatenated batch, and the
rank gradients (on each rank's own embeddings, and the scale's averaged over ranks) are the one-process
gradients of that mean. (The whole-model 2-rank DeepSpeed step of tests/test_train_distributed.py
cannot hold for TIRG: the BatchNorm of its composer and of its trained CNN normalises each rank's
samples with that rank's statistics.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from test_train_support import free_port

LOSSES = (("batch_classification", "paper"), ("soft_triplet", "paper"), ("soft_triplet", "released"))
WORLD, BATCH = 2, 6


def tirg(vocabulary: str, loss: str, triplet: str):
    from coir.pipeline.models.registry import build_model

    torch.manual_seed(0)
    base = {"family": "tirg", "vocabulary": vocabulary, "embed_dim": 8, "word_dim": 4, "lstm_hidden": 4}
    return build_model({**base, "loss": loss, "triplet": triplet})


def embeddings() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return (F.normalize(torch.randn(BATCH, 8, generator=g), dim=-1) for _ in range(2))


def run(model, queries: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    queries, targets = queries.clone().requires_grad_(), targets.clone().requires_grad_()
    loss = model.objective(queries, targets)
    loss.backward()
    return {
        "loss": loss.detach(),
        "queries": queries.grad,
        "targets": targets.grad,
        "scale": model.norm_scale.grad,
    }


def rank_main(rank: int, port: int, vocabulary: str, work: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        queries, targets = embeddings()
        share = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        results = {
            (loss, triplet): run(tirg(vocabulary, loss, triplet), queries[share], targets[share])
            for loss, triplet in LOSSES
        }
        torch.save(results, Path(work) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[str, list[dict]]:
    from coir.datasets.vocab import Vocabulary

    work = tmp_path_factory.mktemp("tirg_gather")
    vocabulary = str(Vocabulary.from_captions(["red dress"], tokenizer="tirg").save(work / "vocab.json"))
    mp.spawn(rank_main, args=(free_port(), vocabulary, str(work)), nprocs=WORLD, join=True)
    return vocabulary, [torch.load(work / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.parametrize(("loss", "triplet"), LOSSES)
def test_two_ranks_equal_one_process(ranks, loss: str, triplet: str) -> None:
    vocabulary, results = ranks
    one = run(tirg(vocabulary, loss, triplet), *embeddings())
    two = [r[(loss, triplet)] for r in results]
    torch.testing.assert_close(sum(r["loss"] for r in two) / WORLD, one["loss"])
    for side in ("queries", "targets"):  # each rank's gradient = W x the one-process gradient of the mean
        gathered = torch.cat([r[side] for r in two]) / WORLD
        torch.testing.assert_close(gathered, one[side])
    torch.testing.assert_close(sum(r["scale"] for r in two) / WORLD, one["scale"])

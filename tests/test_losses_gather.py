"""Gathered-negatives contrastive loss: 2 processes (gloo) equal one process on the concatenated batch.

What is compared: each rank's loss is the mean over its own queries (against all gathered targets), so
the MEAN of the two rank losses must equal the single-process loss, and the MEAN of the two ranks'
parameter gradients (what DDP and DeepSpeed all-reduce: an average) must equal the single-process
gradient. Equivalently, the sum of the rank gradients is world_size x the single-process gradient.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from coir.pipeline.losses import contrastive_loss, gather_with_grad
from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.blip.tokenizer import train_wordpiece
from coir.pipeline.models.registry import build_model

TEXTS = [
    "the circle is red",
    "make the square blue",
    "add a green triangle",
    "remove the small star",
    "two red circles",
    "no shapes",
    "a yellow star",
    "move it left",
]
SIZE = 32
WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_cfg(tok_dir: str) -> BlipModelConfig:
    return BlipModelConfig(
        tokenizer=tok_dir, image_size=SIZE, max_length=12, symmetric=True, reverse_weight=0.5
    )


def vectors() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    q = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=-1)
    return q, t


def rank_main(rank: int, port: int, tok_dir: str, work: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        result = {}
        # 1. the model: each rank takes half of the batch
        model = build_model(model_cfg(tok_dir))
        model.load_state_dict(torch.load(os.path.join(work, "weights.pt")))
        batch = torch.load(os.path.join(work, "batch.pt"))
        half = {k: v.chunk(WORLD)[rank] for k, v in batch.items()}
        out = model.loss(half)
        out["loss"].backward()
        result["model"] = {k: v.detach() for k, v in out.items()}
        result["grads"] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        # 2. the bare loss with unequal shares (3 + 5 rows): gradients reach the gathered inputs
        q, t = vectors()
        rows = slice(0, 3) if rank == 0 else slice(3, 8)
        ql, tl = q[rows].clone().requires_grad_(), t[rows].clone().requires_grad_()
        gathered, offset = gather_with_grad(tl)
        loss = contrastive_loss(ql, tl, 0.1)
        loss.backward()
        result["uneven"] = {
            "loss": loss.detach(),
            "n": ql.shape[0],
            "gq": ql.grad,
            "gt": tl.grad,
            "offset": offset,
            "gathered": gathered.detach(),
        }
        torch.save(result, os.path.join(work, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("gather")
    tok_dir = str(train_wordpiece(TEXTS * 3, work / "tok", vocab_size=80))
    torch.manual_seed(0)
    model = build_model(model_cfg(tok_dir))
    with torch.no_grad():
        model.temp.fill_(0.1)
    g = torch.Generator().manual_seed(1)
    batch = {
        "query_image": torch.randn(8, 3, SIZE, SIZE, generator=g),
        "target_image": torch.randn(8, 3, SIZE, SIZE, generator=g),
        **model.processor().text(TEXTS),
    }
    torch.save(model.state_dict(), work / "weights.pt")
    torch.save(batch, work / "batch.pt")
    mp.spawn(rank_main, args=(free_port(), tok_dir, str(work)), nprocs=WORLD, join=True)
    ranks = [torch.load(work / f"rank{r}.pt") for r in range(WORLD)]
    return model, batch, ranks


def test_gathered_model_loss_equals_single_process_loss(distributed_run):
    model, batch, ranks = distributed_run
    single = model.loss(batch)
    for key in ("loss", "loss_q2t", "loss_t2q", "loss_reverse"):
        mean = sum(r["model"][key] for r in ranks) / WORLD
        torch.testing.assert_close(mean, single[key].detach(), msg=key)
    # the per-rank values differ (each is the mean over its own queries), so this is not trivially true
    assert not torch.isclose(ranks[0]["model"]["loss"], ranks[1]["model"]["loss"])


def test_averaged_rank_gradients_equal_single_process_gradients(distributed_run):
    model, batch, ranks = distributed_run
    model.zero_grad()
    model.loss(batch)["loss"].backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(grads) == set(ranks[0]["grads"]) == set(ranks[1]["grads"])
    assert "temp" in grads and any(n.startswith("vision_model.") for n in grads)
    for name, g in grads.items():
        averaged = sum(r["grads"][name] for r in ranks) / WORLD  # what DDP / DeepSpeed apply
        # float32 summation order differs between 2 x 4 and 1 x 8 samples: tolerance scales with the
        # gradient's own magnitude (a bias gradient sums many terms that nearly cancel)
        scale = g.abs().max().item()
        torch.testing.assert_close(averaged, g, atol=1e-6 + 1e-5 * scale, rtol=1e-4, msg=name)


def test_uneven_shares_gather_with_gradients(distributed_run):
    _, _, ranks = distributed_run
    q, t = vectors()
    qs, ts = q.clone().requires_grad_(), t.clone().requires_grad_()
    single = contrastive_loss(qs, ts, 0.1)
    (single * 8).backward()  # the sum over all queries: what the ranks' per-query-sum losses add up to
    u = [r["uneven"] for r in ranks]
    assert [x["offset"] for x in u] == [0, 3]
    assert all(torch.equal(x["gathered"], t) for x in u)
    torch.testing.assert_close(sum(x["loss"] * x["n"] for x in u) / 8, single.detach())
    # rank losses are means over 3 and 5 queries; scale each rank's gradients by its share to compare
    gq = torch.cat([x["gq"] * x["n"] for x in u])
    torch.testing.assert_close(gq, qs.grad)
    # target gradients arrive from BOTH ranks' losses through the gather's backward
    gt = torch.cat([x["gt"] for x in u])
    tt = t.clone().requires_grad_()
    logits = q @ tt.T / 0.1
    labels = torch.arange(8)
    ce = torch.nn.functional.cross_entropy
    (ce(logits[:3], labels[:3]) + ce(logits[3:], labels[3:])).backward()
    torch.testing.assert_close(gt, tt.grad)


def test_no_process_group_is_the_plain_loss():
    q, t = vectors()
    logits = q @ t.T / 0.1
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(8))
    torch.testing.assert_close(contrastive_loss(q, t, 0.1), expected)
    gathered, offset = gather_with_grad(t)
    assert gathered is t and offset == 0

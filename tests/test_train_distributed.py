"""Two ranks, DeepSpeed ZeRO-2 on CPU (gloo), tiny CASE: SIGTERM -> collective checkpoint and status
"preempted"; `torchrun --nproc_per_node 2 ... --resume auto` finishes the full step count with no repeated
or lost steps; the loss falls; the ranks read disjoint shards. One optimizer step of 2 ranks x B samples
(negatives gathered across ranks) equals one process on the 2B concatenated samples."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_train_support import (
    REPO,
    child_env,
    free_port,
    launch,
    make_tokenizer,
    make_vocabulary,
    read_jsonl,
    texts,
    tiny_artemis,
    wait_all,
    write_recipe,
    write_shards,
)

TOTAL, WORLD, BATCH = 16, 2, 8


def test_two_ranks_sigterm_then_torchrun_resume(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", shards=4, per_shard=16, corrupt=((1, 2),))
    tok = make_tokenizer(tmp_path / "tok")
    recipe = write_recipe(
        tmp_path,
        tmp_path / "shards",
        tok,
        **{
            "optim.total_steps": TOTAL,
            "optim.lr": 2e-3,
            "checkpoint.every_steps": 100,
            "checkpoint.keep_last": 2,
            "data.batch_size": BATCH,
            "data.num_workers": 1,
            "data.samples_per_epoch_per_worker": 64,
        },
    )
    run = tmp_path / "run"

    procs = launch(recipe, WORLD, port=free_port(), COIR_TRAIN_STEP_DELAY="0.3")
    log_file = run / "logs" / "train.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if log_file.exists() and any(r["step"] >= 3 for r in read_jsonl(log_file)):
            break
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)  # one rank is signalled; both must stop at the same step
    results = wait_all(procs)
    assert [code for code, _ in results] == [75, 75], results[0][1][-3000:] + results[1][1][-3000:]
    first = json.loads(results[0][1].strip().splitlines()[-1])
    stopped = first["step"]
    assert first["status"] == "preempted" and 3 <= stopped < TOTAL
    assert first["checkpoint"].endswith(f"step_{stopped:08d}")
    saved = run / "checkpoints" / f"step_{stopped:08d}"
    assert json.loads((saved / "trainer.json").read_text())["step"] == stopped
    assert {p.name for p in saved.glob("rank_*.pt")} == {"rank_00000.pt", "rank_00001.pt"}

    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(WORLD),
        "--master_port",
        str(free_port()),
        "-m",
        "coir.pipeline.train_cli",
        str(recipe),
        "--resume",
        "auto",
    ]
    done = subprocess.run(
        torchrun, env=child_env(), cwd=str(REPO), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert result["status"] == "completed" and result["step"] == TOTAL
    assert result["samples_seen"] == TOTAL * WORLD * BATCH
    assert (Path(result["export_dir"]) / "model.safetensors").is_file()

    records = read_jsonl(log_file)
    assert [r["step"] for r in records] == list(range(1, TOTAL + 1))  # none repeated, none lost
    assert [r["samples_seen"] for r in records] == [s * WORLD * BATCH for s in range(1, TOTAL + 1)]
    losses = [r["loss"] for r in records]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.2, losses

    seen = {}
    for rank in range(WORLD):
        rows = read_jsonl(run / "logs" / f"data_rank{rank}.jsonl")
        assert sorted({r["step"] for r in rows}) == list(range(1, TOTAL + 1))
        seen[rank] = {Path(s).name for r in rows for s in r["shards"]}
    print("shards per rank:", seen)
    assert seen[0] == {shards[0].name, shards[2].name} and seen[1] == {shards[1].name, shards[3].name}


GLOBAL_BATCH = 8


def _fixed_batch(processor, size: int | None, samples: str = "triplets") -> dict:
    import torch

    g = torch.Generator().manual_seed(11)
    size = size or processor.image_size
    if samples == "images":  # a model that trains on single images (Pic2Word)
        return {"image": torch.randn(GLOBAL_BATCH, 3, size, size, generator=g)}
    return {
        "query_image": torch.randn(GLOBAL_BATCH, 3, size, size, generator=g),
        "target_image": torch.randn(GLOBAL_BATCH, 3, size, size, generator=g),
        **processor.text(texts()[:GLOBAL_BATCH]),
    }


def _deepspeed_step(
    rank: int, world: int, port: int, recipe: str, overrides: tuple[str, ...] = (), steps: int = 1
) -> dict:
    """The engine's DeepSpeed set-up and `steps` micro-steps (forward, backward, optimizer step) on this
    rank's share of the fixed batch: the last loss (mean over ranks) and the updated weights."""
    from coir.pipeline import distributed, engine
    from coir.pipeline.config import load_train_config

    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    config = load_train_config(recipe, [f"data.batch_size={GLOBAL_BATCH // world}", *overrides])
    dist_env = distributed.setup_environment()
    distributed.init_process_group(dist_env, False)
    try:
        trainer = engine._Trainer(config, [], None, dist_env, False)
        trainer._build()
        batch = _fixed_batch(trainer.processor, getattr(config.model, "image_size", None), trainer.samples)
        initial = {k: v.detach().clone() for k, v in trainer.engine.module.state_dict().items()}
        grad_norms = []  # before clipping; DeepSpeed reports it under ZeRO stages 1-2 only
        for _ in range(steps):
            losses = trainer._micro_step({k: v.chunk(world)[rank] for k, v in batch.items()})
            grad_norms.append(trainer.engine.get_global_grad_norm())
        assert trainer.engine.global_steps == steps  # an optimizer step per micro-step
        (loss,) = distributed.all_reduce_sum([float(losses["loss"])])
        state = {k: v.detach().clone() for k, v in trainer.engine.module.state_dict().items()}
        return {"loss": loss / world, "state": state, "initial": initial, "grad_norms": grad_norms}
    finally:
        distributed.shutdown()


def _single_process_step(recipe: str) -> dict:
    """The same step done by hand in one process (no process group) on the whole batch: the engine's
    initial weights, AdamW groups, schedule and gradient clipping."""
    import torch

    from coir.pipeline import engine
    from coir.pipeline.config import load_train_config
    from coir.pipeline.models.registry import build_model

    config = load_train_config(recipe, [f"data.batch_size={GLOBAL_BATCH}"])
    optim = config.optim
    engine._seed_all(config.seed)
    model = build_model(config.model).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = [
        {k: v for k, v in g.items() if k != "names"} for g in engine.param_groups(model, optim.weight_decay)
    ]
    factor = engine.WarmupCosine(optim.warmup_steps, optim.total_steps, optim.min_lr / optim.lr)(0)
    optimizer = torch.optim.AdamW(groups, lr=optim.lr * factor, betas=tuple(optim.betas), eps=optim.eps)
    batch = _fixed_batch(model.processor(), getattr(config.model, "image_size", None), model.training_samples)
    losses = model.loss(batch)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
    optimizer.step()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"loss": float(losses["loss"]), "state": state, "moved": _max_difference(state, before)}


def _max_difference(state: dict, reference: dict) -> float:
    assert state.keys() == reference.keys()
    return max(float((state[k] - reference[k]).abs().max()) for k in reference)


def _step_recipe(tmp_path: Path, grad_clip: float, family: str = "blip") -> Path:
    """The tiny recipe for fixed-batch steps: warm-up 0, so the first step uses the full lr; a larger Adam
    eps keeps the first update (~ lr * g / |g|) smooth in g, so float noise in near-zero gradients cannot
    flip whole updates. ARTEMIS and CMAP run with their backbone frozen (stage 1): BatchNorm in training mode
    normalises each rank's images with that rank's statistics, which no split of a batch reproduces."""
    overrides = {"optim.warmup_steps": 0, "optim.lr": 1e-2, "optim.eps": 1e-3, "optim.grad_clip": grad_clip}
    if family in ("artemis", "cmap"):
        model = tiny_artemis(make_vocabulary(tmp_path), family=family, freeze_backbone=True)
        return write_recipe(tmp_path, tmp_path / "no_shards", None, model, **overrides)
    if family == "pic2word":  # no dropout: the two runs would draw different masks
        clip = {
            "embed_dim": 32,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
        }
        model = {"family": "pic2word", "clip_config": clip, "hidden_dim": 24, "dropout": 0.0}
        return write_recipe(tmp_path, tmp_path / "no_shards", None, model, **overrides)
    return write_recipe(tmp_path, tmp_path / "no_shards", make_tokenizer(tmp_path / "tok"), **overrides)


def _run_spawned(target, args: list[tuple], timeout: float = 240) -> None:
    """target(*a) in a fresh spawned process for each a in args, all at once; each must exit 0."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=a) for a in args]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=timeout)
    if any(p.is_alive() for p in procs):
        for p in procs:
            p.kill()
        raise AssertionError(f"{target.__name__} processes timed out")
    assert [p.exitcode for p in procs] == [0] * len(procs)


def _two_ranks_then_one(rank: int, port: int, recipe: str, out: str) -> None:
    """Spawned: 2 ranks x GLOBAL_BATCH/2 through DeepSpeed; then rank 0 alone, with no process group left,
    1 x GLOBAL_BATCH."""
    import torch

    os.environ.update(child_env())
    torch.set_num_threads(1)
    results = {"two": _deepspeed_step(rank, 2, port, recipe)}
    if rank == 0:
        results["one"] = _single_process_step(recipe)
    torch.save(results, out)


# one per kind of model: a dot-product dual encoder (CASE; CLIP4Cir's combiner gathers targets the same
# way), joint EM + IS scoring (ARTEMIS) and its multi-level form (CMAP), and a symmetric loss over single
# images, both directions gathered, through a frozen CLIP (Pic2Word)
@pytest.mark.parametrize("family", ["blip", "artemis", "cmap", "pic2word"])
def test_two_ranks_step_equals_one_process_on_the_concatenated_batch(tmp_path: Path, family: str) -> None:
    """Gathered negatives through DeepSpeed ZeRO-2: 2 ranks x 4 samples give the loss (rank mean) and the
    updated weights of one process x 8 samples, after one optimizer step; for CASE's dot product, for
    ARTEMIS's joint score of each query against every gathered target, and for a multi-level family
    (CMAP: three levels of gathered targets, and a loss summed over the batch on matching pairs), and for
    CLIP4Cir's Combiner with both CLIP towers tuning."""
    import torch

    recipe = _step_recipe(tmp_path, grad_clip=1.0, family=family)
    port = free_port()
    outs = [tmp_path / f"rank{rank}.pt" for rank in range(2)]
    _run_spawned(_two_ranks_then_one, [(rank, port, str(recipe), str(outs[rank])) for rank in (0, 1)])

    one = torch.load(outs[0], weights_only=False)["one"]
    assert one["moved"] > 1e-3  # the step changed the weights well beyond the tolerance below
    for out in outs:
        two = torch.load(out, weights_only=False)["two"]
        assert abs(two["loss"] - one["loss"]) < 1e-5 * max(1.0, abs(one["loss"])), (two["loss"], one["loss"])
        worst = _max_difference(two["state"], one["state"])
        assert worst < 1e-5, f"{out.name}: max weight difference {worst}"


def _zero_stage_steps(stage: int, port: int, recipe: str, out: str) -> None:
    """Spawned: one process, ZeRO `stage`, three optimizer steps."""
    import torch

    os.environ.update(child_env())
    torch.set_num_threads(1)
    torch.save(_deepspeed_step(0, 1, port, recipe, (f"deepspeed.zero_stage={stage}",), steps=3), out)


def test_zero_stages_0_1_2_take_the_same_steps(tmp_path: Path) -> None:
    """The ZeRO stage changes where optimizer state lives, not the update: three clipped fp32 AdamW steps
    end at the same weights under stages 0, 1 and 2 (stage 0 clips through DeepSpeed's own fp32 path,
    stages 1-2 through the ZeRO optimizer)."""
    import torch

    clip = 0.05
    recipe = _step_recipe(tmp_path, grad_clip=clip)
    outs = {stage: tmp_path / f"stage{stage}.pt" for stage in (0, 1, 2)}
    _run_spawned(
        _zero_stage_steps, [(stage, free_port(), str(recipe), str(out)) for stage, out in outs.items()]
    )

    results = {stage: torch.load(out, weights_only=False) for stage, out in outs.items()}
    reference = results[2]
    assert min(reference["grad_norms"]) > 2 * clip  # every step was clipped
    assert _max_difference(reference["state"], reference["initial"]) > 1e-3  # far beyond the tolerance
    for stage in (0, 1):
        worst = _max_difference(results[stage]["state"], reference["state"])
        assert worst < 1e-5, f"stage {stage} vs 2: max weight difference {worst}"
        assert abs(results[stage]["loss"] - reference["loss"]) < 1e-5

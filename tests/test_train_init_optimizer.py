"""checkpoint.init_optimizer_from: stage 2 of a two-stage recipe (tiny ARTEMIS: stage 1 with the CNN and
the word embeddings frozen, stage 2 with everything training, from stage 1's export) starts with stage 1's
AdamW moments and step counts for the parameters that trained in stage 1 and fresh state for the others,
whatever the ZeRO stage of either run; its first update is the one torch's AdamW makes from that state.
Bad sources fail naming the key."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from test_train_distributed import _fixed_batch, _run_spawned
from test_train_support import (
    REPO,
    child_env,
    free_port,
    make_vocabulary,
    read_jsonl,
    tiny_artemis,
    train_command,
    write_recipe,
    write_shards,
)

from coir.common.errors import ConfigError, MissingInputError

STAGE1_STEPS = 3
KEY = "checkpoint.init_optimizer_from"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    write_shards(folder / "shards", shards=2, per_shard=16)
    return folder / "shards", make_vocabulary(folder)


def _stage1(folder: Path, inputs: tuple[Path, Path], zero: int) -> Path:
    """A stage-1 run (CNN and word embeddings frozen) of STAGE1_STEPS steps; its run folder."""
    shards, vocabulary = inputs
    model = tiny_artemis(vocabulary, freeze_backbone=True, freeze_word_embeddings=True)
    recipe = write_recipe(
        folder,
        shards,
        None,
        model,
        **{
            "optim.total_steps": STAGE1_STEPS,
            "optim.warmup_steps": 0,
            "deepspeed.zero_stage": zero,
            "checkpoint.optimizer_by_name": True,
        },
    )
    done = subprocess.run(
        train_command(recipe), env=child_env(), cwd=str(REPO), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder / "run"


@pytest.fixture(scope="module")
def stage1(inputs, tmp_path_factory) -> dict[int, Path]:
    return {zero: _stage1(tmp_path_factory.mktemp(f"stage1_zero{zero}"), inputs, zero) for zero in (0, 2)}


def _stage2_recipe(
    folder: Path, inputs: tuple[Path, Path], stage1_run: Path, zero: int, precision: str = "fp32"
) -> Path:
    shards, vocabulary = inputs
    model = tiny_artemis(vocabulary, init_from=str(stage1_run / "export"))
    overrides = {
        "optim.warmup_steps": 0,
        "optim.lr": 1e-2,
        "deepspeed.zero_stage": zero,
        "deepspeed.precision": precision,
        KEY: str(stage1_run),
    }
    return write_recipe(folder, shards, None, model, **overrides)


def _stage2_step(port: int, recipe: str, out: str) -> None:
    """Spawned, one process: the trainer's set-up of stage 2 (its optimizer state as gathered for a
    checkpoint) and one optimizer step on a fixed batch; then the same step by hand with torch's AdamW,
    seeded from stage 1's saved state as torch's load_state_dict would (per-parameter step counts)."""
    import torch

    from coir.pipeline import distributed, engine, optimizer_state
    from coir.pipeline.config import load_train_config
    from coir.pipeline.models.registry import build_model

    os.environ.update(child_env(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0"))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    config = load_train_config(recipe)
    dist_env = distributed.setup_environment()
    distributed.init_process_group(dist_env, False)
    try:
        trainer = engine._Trainer(config, [], None, dist_env, False)
        trainer._build()
        seeded = optimizer_state.gather(trainer.engine, trainer.groups, keep=True)
        batch = _fixed_batch(trainer.processor, config.model.image_size)
        if trainer.bf16:
            torch.save({"seeded": seeded}, out)
            return
        trainer._micro_step(batch)
        deepspeed_state = {k: v.detach().clone() for k, v in trainer.engine.module.state_dict().items()}
    finally:
        distributed.shutdown()

    _, source = optimizer_state.load(config.checkpoint.init_optimizer_from)
    by_hand = {}
    for carry in (True, False):
        engine._seed_all(config.seed)
        model = build_model(config.model).train()
        steps = {n: float(s["step"]) for n, s in source.items()} if carry else {}
        groups = engine.param_groups(model, config.optim.weight_decay, steps)
        optimizer = torch.optim.AdamW(
            [{k: v for k, v in g.items() if k != "names"} for g in groups],
            lr=config.optim.lr,
            betas=tuple(config.optim.betas),
            eps=config.optim.eps,
        )
        params = dict(model.named_parameters())
        for name in steps:
            optimizer.state[params[name]] = {
                "step": torch.tensor(steps[name]),
                "exp_avg": source[name]["exp_avg"].clone(),
                "exp_avg_sq": source[name]["exp_avg_sq"].clone(),
            }
        model.loss(batch)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        by_hand[carry] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainables = {n for n, p in model.named_parameters() if p.requires_grad}
    torch.save(
        {"seeded": seeded, "deepspeed": deepspeed_state, "by_hand": by_hand, "trainables": trainables}, out
    )


def _max_difference(state: dict, reference: dict, names: set[str]) -> float:
    return max(float((state[k] - reference[k]).abs().max()) for k in names)


def _saved(run: Path) -> dict:
    import torch

    file = run / "checkpoints" / f"step_{STAGE1_STEPS:08d}" / "optimizer_by_name.pt"
    return torch.load(file, weights_only=True)["state"]


def test_stage1_state_by_name_is_the_same_under_zero_0_and_2(stage1) -> None:
    """ZeRO 2's partitioned state, gathered by name, is stage 0's (both runs take the same steps)."""

    zero0, zero2 = _saved(stage1[0]), _saved(stage1[2])
    assert zero0.keys() == zero2.keys() and not any("embedding" in n or "cnn" in n for n in zero0)
    for name, state in zero0.items():
        assert state["step"] == zero2[name]["step"] == STAGE1_STEPS
        for key in ("exp_avg", "exp_avg_sq"):
            worst = float((state[key] - zero2[name][key]).abs().max())
            assert worst <= 1e-4 * float(state[key].abs().max()), (name, key, worst)
    assert all(float(state["exp_avg_sq"].abs().max()) > 0 for state in zero0.values())


# bf16 at stage 0 on CPU (DeepSpeed's fp32 copy of each parameter) passes too, left out for time; on GPU
# (one flat fp32 copy per group) it is not tested
@pytest.mark.parametrize(("zero1", "zero2", "precision"), [(0, 2, "fp32"), (2, 0, "fp32")])
def test_stage2_starts_from_stage1_optimizer_state(
    tmp_path: Path, inputs, stage1, zero1: int, zero2: int, precision: str
) -> None:
    """fp32 stage 0: AdamW's state per parameter; ZeRO 2: partitioned (bf16: no first-step check, bf16
    weights round the update)."""
    import torch

    saved = _saved(stage1[zero1])
    recipe = _stage2_recipe(tmp_path, inputs, stage1[zero1], zero2, precision)
    out = tmp_path / "stage2.pt"
    _run_spawned(_stage2_step, [(free_port(), str(recipe), str(out))])
    result = torch.load(out, weights_only=False)

    seeded = result["seeded"]["state"]
    for name, state in saved.items():
        assert seeded[name]["step"] == state["step"] == STAGE1_STEPS
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(seeded[name][key], state[key]), name
    # the newly trainable parameters (CNN, word embeddings) have no state or zero moments
    new = set(seeded) - set(saved)
    assert all(not seeded[n]["exp_avg"].any() and not seeded[n]["exp_avg_sq"].any() for n in new)
    if precision == "bf16":
        return
    trainables = result["trainables"]
    new = trainables - set(saved)
    assert any(n.startswith("image_encoder.cnn") for n in new) and any("embedding" in n for n in new)

    # the first stage-2 update is torch AdamW's from stage 1's state for the carried parameters and from
    # scratch for the new ones; starting every parameter fresh would give another update
    deepspeed_state, by_hand = result["deepspeed"], result["by_hand"]
    assert _max_difference(deepspeed_state, by_hand[True], trainables) < 1e-5
    assert _max_difference(by_hand[True], by_hand[False], set(saved)) > 1e-3


def test_stage2_resumes_its_own_checkpoint_exactly(tmp_path: Path, inputs, stage1) -> None:
    """Stage 2 through the CLI (ZeRO 1): seeded once; resuming its own checkpoint rebuilds the same param
    groups (from the checkpoint, not the source), loads DeepSpeed's state and repeats the same step."""
    recipe = _stage2_recipe(tmp_path, inputs, stage1[2], 1)
    overrides = ["optim.total_steps=2", "checkpoint.every_steps=1", "optim.lr=1e-3"]
    first = subprocess.run(
        train_command(recipe, *overrides), env=child_env(), cwd=str(REPO), capture_output=True, text=True
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert re.search(r"optimizer state from \S+optimizer_by_name.pt: \d+ parameters .* carried", first.stderr)
    checkpoints = tmp_path / "run" / "checkpoints"
    carried = json.loads((checkpoints / "step_00000001" / "trainer.json").read_text())["carried_steps"]
    assert carried and set(carried.values()) == {float(STAGE1_STEPS)}

    resume = f"checkpoint.resume={checkpoints / 'step_00000001'}"
    again = subprocess.run(
        train_command(recipe, *overrides, resume),
        env=child_env(),
        cwd=str(REPO),
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resumed from" in again.stdout and "optimizer state from" not in again.stderr
    records = [r for r in read_jsonl(tmp_path / "run" / "logs" / "train.jsonl") if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 2]
    assert records[2]["loss"] == pytest.approx(records[1]["loss"], rel=1e-6)


def test_bad_sources_name_the_key(tmp_path: Path, inputs, stage1) -> None:
    from coir.pipeline import optimizer_state
    from coir.pipeline.config import check_paths, load_train_config

    recipe = _stage2_recipe(tmp_path, inputs, stage1[0], 0)
    missing = load_train_config(recipe, [f"{KEY}={tmp_path / 'nowhere'}"])
    with pytest.raises(MissingInputError, match=f"{KEY}.*nowhere"):
        check_paths(missing)

    with pytest.raises(ConfigError, match=f"{KEY}.*no complete checkpoint"):
        optimizer_state.load(str(tmp_path))

    # a checkpoint without the name-keyed state (e.g. written before the optimizer's first step)
    old = tmp_path / "old" / "step_00000002"
    old.mkdir(parents=True)
    (old / "trainer.json").write_text(json.dumps({"step": 2}))
    with pytest.raises(ConfigError, match=f"{KEY}.*step_00000002 has no name-keyed optimizer state"):
        optimizer_state.load(str(tmp_path / "old"))

    # a source whose names this model does not have
    import torch

    foreign = {"other.weight": {"exp_avg": torch.zeros(2), "exp_avg_sq": torch.zeros(2), "step": 1.0}}
    torch.save({"format": 1, "state": foreign}, old / "optimizer_by_name.pt")
    file, source = optimizer_state.load(str(old))
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match=f"{KEY}.*no trainable parameter.*{file}"):
        optimizer_state.carried_steps(model, source, file)

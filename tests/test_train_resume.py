"""Exact resume: "train 2N steps" == "train, SIGKILL after a checkpoint, resume auto, SIGUSR2 during the
end-of-epoch validation, resume auto, finish" (tiny CASE).

All runs go through `python -m coir.pipeline.train_cli` (DeepSpeed ZeRO-2, fp32, gloo, one rank) on
shards with corrupt samples, so the resumed data stream must also account for skipped samples.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest
import torch
from test_train_support import (
    export_state,
    free_port,
    launch,
    make_tokenizer,
    read_jsonl,
    tail,
    wait_all,
    write_recipe,
    write_shards,
)

TOTAL, EVERY = 12, 4
EPOCH_STEPS = 10  # 2 workers x (40 samples // batch 8)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    write_shards(folder / "shards", shards=4, per_shard=16, corrupt=((0, 3), (2, 7)))
    return folder / "shards", make_tokenizer(folder / "tok")


def _recipe(tmp: Path, inputs: tuple[Path, Path], **extra: object) -> Path:
    tmp.mkdir()
    shards, tok = inputs
    return write_recipe(
        tmp,
        shards,
        tok,
        **extra,
        **{
            "optim.total_steps": TOTAL,
            "checkpoint.every_steps": EVERY,
            "checkpoint.keep_last": 2,
            "data.num_workers": 2,
            "data.samples_per_epoch_per_worker": 40,
        },
    )


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path, inputs) -> None:
    # the reference also validates each epoch (a stand-in validator) and must keep the best export;
    # validation must not disturb training either
    for name in ("val_ref", "val_killed"):
        (tmp_path / name).mkdir()
    reference = _recipe(
        tmp_path / "ref",
        inputs,
        **{"validation.benchmark": "fake", "validation.data_root": str(tmp_path / "val_ref")},
    )
    killed = _recipe(
        tmp_path / "killed",
        inputs,
        **{"validation.benchmark": "fake", "validation.data_root": str(tmp_path / "val_killed")},
    )
    checkpoints = tmp_path / "killed" / "run" / "checkpoints"
    # the uninterrupted run and the one to be killed run side by side
    ref_proc = launch(reference, 1, port=free_port(), fake_validator=True)
    victim = launch(killed, 1, port=free_port(), fake_validator=True, COIR_TRAIN_STEP_DELAY="0.4")[0]
    marker = checkpoints / f"step_{EVERY:08d}" / "trainer.json"
    deadline = time.time() + 240
    while not marker.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, "the run ended before it could be killed:\n" + tail(victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    killed_log = read_jsonl(tmp_path / "killed" / "run" / "logs" / "train.jsonl")
    assert EVERY <= killed_log[-1]["step"] < EPOCH_STEPS  # killed before the first validation

    # resumed; SIGUSR2 arrives during the (slow) validation after epoch 1: the run stops right there,
    # before another optimizer step, with the validation's result in the checkpoint
    (first_resume,) = launch(
        killed, 1, "--resume", "auto", port=free_port(), fake_validator="signalling_validator"
    )
    ((code, out),) = wait_all([first_resume])
    assert code == 75, out[-3000:]
    preempted = json.loads(out.strip().splitlines()[-1])
    assert preempted["status"] == "preempted" and preempted["step"] == EPOCH_STEPS, preempted
    assert preempted["checkpoint"] == str(checkpoints / f"step_{EPOCH_STEPS:08d}")
    saved = json.loads((checkpoints / f"step_{EPOCH_STEPS:08d}" / "trainer.json").read_text())
    assert saved["validated_step"] == EPOCH_STEPS and saved["epoch"] == 1
    assert saved["best"] == {"score": 0.9, "step": EPOCH_STEPS, "epoch": 1}
    first_resume_step = int(re.search(r"resumed from \S+ at step (\d+)", out).group(1))
    assert first_resume_step % EVERY == 0 and first_resume_step >= EVERY

    resumed = launch(killed, 1, "--resume", "auto", port=free_port(), fake_validator=True)
    ((ref_code, ref_out),) = wait_all(ref_proc)
    ((code, out),) = wait_all(resumed)
    assert ref_code == 0, ref_out[-3000:]
    assert code == 0, out[-3000:]
    assert f"at step {EPOCH_STEPS}" in out and '"status": "completed"' in out

    # the same losses step by step after the resume point (the data stream continued exactly) ...
    ref_records = read_jsonl(tmp_path / "ref" / "run" / "logs" / "train.jsonl")
    ref_log = {r["step"]: r for r in ref_records if "loss" in r}
    log = read_jsonl(tmp_path / "killed" / "run" / "logs" / "train.jsonl")
    after = [r for r in log[len(killed_log) :] if "loss" in r]
    assert [r["step"] for r in after] == list(range(first_resume_step + 1, TOTAL + 1))
    for record in after:
        assert record["loss"] == pytest.approx(ref_log[record["step"]]["loss"], rel=1e-5, abs=1e-6)
        assert record["skipped_samples"] == ref_log[record["step"]]["skipped_samples"]
    assert ref_log[TOTAL]["skipped_samples"] > 0  # corrupt samples were met, skipped and counted

    # ... and the same final weights
    want, got = (
        export_state(tmp_path / "ref" / "run" / "export"),
        export_state(tmp_path / "killed" / "run" / "export"),
    )
    assert want.keys() == got.keys()
    worst = max(float((want[k].float() - got[k].float()).abs().max()) for k in want)
    assert worst < 1e-5, f"max weight difference {worst}"

    # validation ran after epoch 1 (step 10) and at the end (step 12); the best (0.9, step 10) was kept;
    # the interrupted run validated exactly as often (not again after its resume at step 10)
    result = json.loads(ref_out.strip().splitlines()[-1])
    assert result["best"] == {"score": 0.9, "step": EPOCH_STEPS, "epoch": 1}
    assert json.loads(out.strip().splitlines()[-1])["best"] == result["best"]
    for records in (ref_records, log):
        assert [(r["step"], r["val/main"]) for r in records if "val/main" in r] == [
            (EPOCH_STEPS, 0.9),
            (TOTAL, 0.5),
        ]
    best = export_state(tmp_path / "ref" / "run" / "best")
    assert any(not torch.equal(best[k], want[k]) for k in want)  # the step-10 weights, not the final ones

    # keep_last=2: only the two newest complete checkpoints remain (the preemption's and the final one)
    names = sorted(p.name for p in checkpoints.glob("step_*"))
    assert names == [f"step_{EPOCH_STEPS:08d}", f"step_{TOTAL:08d}"]

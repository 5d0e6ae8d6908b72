"""Two ranks, DeepSpeed ZeRO-2 on CPU (gloo), tiny CASE: SIGTERM -> collective checkpoint and status
"preempted"; `torchrun --nproc_per_node 2 ... --resume auto` finishes the full step count with no repeated
or lost steps; the loss falls; the ranks read disjoint shards."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_train_support import (
    REPO,
    child_env,
    free_port,
    launch,
    make_tokenizer,
    read_jsonl,
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

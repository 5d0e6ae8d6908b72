"""Hang detection: two CPU ranks (gloo), the data reader of rank 1 is frozen (SIGSTOP) mid-run, so rank 1
waits for a batch forever while rank 0 waits for rank 1 in the gradient collective. The watchdogs must
name rank 1, end both processes with EXIT_STALLED and leave the verdict in the run directory, long
before the collective timeout; and the verdict rules themselves, on hand-made heartbeat records."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from test_train_support import (
    free_port,
    launch,
    make_tokenizer,
    read_jsonl,
    tail,
    wait_all,
    write_recipe,
    write_shards,
)

from coir.pipeline.watchdog import EXIT_STALLED, VERDICT_FILE, judge

COLLECTIVE_TIMEOUT_S = 400  # far beyond wait_all's 240 s: only the watchdog can end the run in time


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


@pytest.mark.slow
def test_a_frozen_reader_is_named_and_both_ranks_end(tmp_path: Path) -> None:
    write_shards(tmp_path / "shards", shards=2, per_shard=16)
    tokenizer = make_tokenizer(tmp_path / "tok")
    recipe = write_recipe(
        tmp_path,
        tmp_path / "shards",
        tokenizer,
        **{
            "optim.total_steps": 1000,
            "checkpoint.every_steps": 0,
            "data.num_workers": 1,
            "data.samples_per_epoch_per_worker": 8000,  # one epoch: no new reader replaces the frozen one
            "logging.log_samples": False,
            "distributed.timeout_s": COLLECTIVE_TIMEOUT_S,
            "distributed.stall_timeout_s": 6,
            "distributed.heartbeat_every_steps": 1,
        },
    )
    run = tmp_path / "run"
    procs = launch(recipe, 2, port=free_port())
    frozen: list[int] = []
    try:
        log_file = run / "logs" / "train.jsonl"
        deadline = time.monotonic() + 240
        while not (log_file.is_file() and any(r["step"] >= 2 for r in read_jsonl(log_file))):
            assert all(p.poll() is None for p in procs), "\n".join(tail(p) for p in procs)
            assert time.monotonic() < deadline, "training did not reach step 2"
            time.sleep(0.2)
        frozen = _children(procs[1].pid)
        assert frozen, "rank 1 has no data reader process to freeze"
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        results = wait_all(procs, timeout=240)
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    logs = "\n".join(tail(p, 4000) for p in procs)
    assert [code for code, _ in results] == [EXIT_STALLED, EXIT_STALLED], logs
    verdict = json.loads((run / "heartbeat" / VERDICT_FILE).read_text())
    assert verdict["culprits"] == [1], verdict
    assert "fetching the batch of step" in verdict["reasons"]["1"]
    rank0 = results[0][1]
    assert "watchdog: training stalled: rank 1 (host" in rank0 and "stopped advancing" in rank0, logs
    assert "Waiting for it: rank 0" in rank0 and "computing step" in rank0
    beats = [json.loads((run / "heartbeat" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [b["rank"] for b in beats] == [0, 1] and all(b["step"] >= 2 for b in beats)


def _record(rank: int, phase: str, step: int = 5, stalled: bool = True, age: float = 1.0) -> dict:
    return {"rank": rank, "host": "n1", "pid": 100 + rank, "epoch": 0, "step": step, "micro": 0,
            "phase": phase, "since": 0.0, "time": 100.0 - age, "stalled": stalled}  # fmt: skip


def test_judge_names_the_rank_behind_the_silent_rank_or_everyone() -> None:
    behind = judge({0: _record(0, "compute"), 1: _record(1, "data"), 2: _record(2, "compute")}, 100.0, 5.0)
    assert behind.culprits == [1] and "fetching the batch of step 6" in behind.reasons[1]

    # rank 2 wrote no stall report (frozen, dead or holding the interpreter): the others wait for it,
    # even though its last heartbeat is at a later step than theirs
    silent = judge(
        {0: _record(0, "compute"), 1: _record(1, "compute"), 2: _record(2, "sync", 9, stalled=False, age=30)},
        100.0,
        5.0,
    )
    assert silent.culprits == [2] and "not responding: last heartbeat 30 s ago" in silent.reasons[2]
    stale = judge({0: _record(0, "compute"), 1: _record(1, "data", age=20)}, 100.0, 5.0)
    assert stale.culprits == [1] and "not responding" in stale.reasons[1]
    missing = judge({0: _record(0, "compute"), 1: None}, 100.0, 5.0)
    assert missing.culprits == [1] and "no heartbeat file" in missing.reasons[1]

    together = judge({0: _record(0, "compute"), 1: _record(1, "compute")}, 100.0, 5.0)
    assert together.culprits == [0, 1] and "like every other rank" in together.message

    # the next epoch's start is ahead of the last batch of the previous one
    epochs = judge({0: {**_record(0, "sync", 8), "epoch": 1}, 1: _record(1, "data", 8)}, 100.0, 5.0)
    assert epochs.culprits == [1]


def test_watchdog_settings_are_checked_at_load(tmp_path: Path) -> None:
    from coir.common.errors import ConfigError
    from coir.pipeline.config import load_train_config

    recipe = Path(__file__).resolve().parents[1] / "configs" / "pretrain" / "case_tiny.yaml"
    loaded = load_train_config(recipe)
    assert loaded.distributed.timeout_s > loaded.distributed.stall_timeout_s > 0  # both on by default
    for overrides, key in (
        (["distributed.timeout_s=600", "distributed.stall_timeout_s=600"], "distributed.stall_timeout_s"),
        (["distributed.timeout_s=0"], "distributed.timeout_s"),
        (["distributed.heartbeat_every_steps=0"], "distributed.heartbeat_every_steps"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_train_config(recipe, overrides)

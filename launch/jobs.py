"""The functions launched jobs run (LaunchedTask targets, named "coir.launch.jobs:<function>").

Each imports its stage lazily, so the submitting process stays light and a job only loads what it
runs. Results are plain dicts: the task writes them as JSON (launch/results.py) and `coir launch status`
shows them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from coir.common.atomic import write_text_atomic
from coir.common.errors import CoirError
from coir.launch.results import read_result

POLL_S = 2.0


# -- training -------------------------------------------------------------------------------------
def train(config: str, overrides: list[str], resume: str | None = None) -> dict[str, Any]:
    """One rank of `coir train CONFIG overrides` (collective); see resume_overrides for `resume`."""
    from coir.pipeline.config import load_train_config
    from coir.pipeline.engine import train as run_training

    result = dict(run_training(load_train_config(config, resume_overrides(config, overrides, resume))))
    result["rank"] = int(os.environ.get("RANK", "0"))
    result["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
    return result


def resume_overrides(config: str, overrides: list[str], resume: str | None) -> list[str]:
    """The overrides of one training attempt.

    resume="auto" (every attempt, the first included, so that SLURM's own requeues resume too): the
    run's newest complete checkpoint when there is one; otherwise the config's checkpoint.resume
    (a checkpoint given by hand for the first attempt, or none: a fresh start).
    """
    from coir.pipeline.checkpoint import newest
    from coir.pipeline.config import load_train_config

    overrides = list(overrides)
    if resume == "auto":
        loaded = load_train_config(config, overrides)
        if loaded.checkpoint.resume in (None, "") or newest(loaded.checkpoint_dir) is not None:
            overrides.append("checkpoint.resume=auto")
    elif resume is not None:
        overrides.append(f"checkpoint.resume={resume}")
    return overrides


# -- any `coir` command -----------------------------------------------------------------------------
def command(words: list[str], args: dict[str, Any]) -> int:
    """Run a registered `coir` command module (e.g. ["data", "synth"]) with parsed arguments."""
    import importlib

    from coir.pipeline.cli import _registered

    target = _registered()[tuple(words)]
    code = int(importlib.import_module(target).run(argparse.Namespace(**args)) or 0)
    if code != 0:
        raise RuntimeError(f"coir {' '.join(words)} exited with code {code}")
    return code


# -- LaSCo build as an array ------------------------------------------------------------------------
def lasco_build(args: dict[str, Any], task_index: int, num_tasks: int) -> dict[str, Any]:
    """Shard range `task_index` of `num_tasks` of a LaSCo build (flags as `coir data lasco` parses them)."""
    from coir.datasets.lasco.build import build_lasco
    from coir.datasets.lasco.cli import load_build_config

    config = load_build_config(argparse.Namespace(**args))
    return build_lasco(config, task_index, num_tasks, progress=False)


def lasco_finalize(out: str, wait_for: list[str], timeout_s: float) -> dict[str, Any]:
    """Merge the build once every array task has finished (fails, naming them, if one did not)."""
    from coir.datasets.lasco.build import finalize_build

    wait_for_results(wait_for, timeout_s)
    return finalize_build(out)


# -- evaluation sweep -------------------------------------------------------------------------------
def evaluate(config: dict[str, Any]) -> dict[str, Any]:
    """One (checkpoint, benchmark) cell of a sweep, on every task of its job: an EvalConfig as a dict.

    With several tasks they form one process group: each embeds its slice of the gallery and queries,
    rank 0 writes the outputs. Returns {"fragment": results fragment, "rank", "world_size", "gallery",
    "queries"} (the last two: images and queries this rank embedded)."""
    from coir.common.config import load_config
    from coir.eval.api import evaluate as run_evaluation
    from coir.eval.config import EvalConfig
    from coir.eval.encode import counting, world
    from coir.eval.ranks import eval_ranks

    loaded = load_config(EvalConfig, base=config)
    with eval_ranks(loaded) as loaded, counting() as counts:
        fragment = run_evaluation(loaded.checkpoint, loaded).fragment
        rank, world_size = world()
    return {"fragment": fragment, "rank": rank, "world_size": world_size, **counts}


def collect_eval(run_dir: str, wait_for: list[str], timeout_s: float) -> dict[str, Any]:
    """Merge every cell's fragment into RUN_DIR/results.json and RUN_DIR/results.md (one table)."""
    from coir.eval.report import write_markdown, write_results

    cells = wait_for_results(wait_for, timeout_s)
    path = Path(run_dir) / "results.json"
    merged: dict[str, Any] = {}
    for cell in cells:
        merged = write_results(path, cell["fragment"])
    write_markdown(Path(run_dir) / "results.md", merged)
    return merged


# -- waiting on other jobs' results -----------------------------------------------------------------
def wait_for_results(paths: list[str], timeout_s: float) -> list[Any]:
    """The values of the jobs whose result files (launch/results.py) are `paths`, once all exist; raises
    if one failed.

    Under SLURM the collecting job depends on the others (afterany), so they are all there at once;
    the local executor starts it beside them and it polls.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        outcomes = [read_result(p) for p in paths]
        if all(o is not None for o in outcomes):
            break
        if time.monotonic() > deadline:
            missing = [p for p, o in zip(paths, outcomes, strict=True) if o is None]
            raise CoirError(
                f"{len(missing)} job(s) did not finish in {timeout_s:.0f} s: {', '.join(missing)}"
            )
        time.sleep(POLL_S)
    failed = [p for p, (status, _) in zip(paths, outcomes, strict=True) if status != "success"]
    if failed:
        raise CoirError(f"{len(failed)} job(s) failed (see their .err logs): {', '.join(failed)}")
    return [value for _, value in outcomes]


# -- cluster self-test ------------------------------------------------------------------------------
def selftest(run_dir: str, steps: int, step_s: float, resume: str | None = None) -> dict[str, Any]:
    """A stand-in trainer that checks a cluster set-up end to end, with no data or model.

    Every rank joins a gloo process group through the exported MASTER_ADDR/PORT, counts `steps`
    steps of `step_s` seconds and appends each to RUN_DIR/selftest/steps_rank<r>.log. Like the real
    trainer it stops on SIGUSR2/SIGTERM at a step boundary the ranks agree on, writes a checkpoint
    and returns status "preempted"; with resume="auto" it continues from that checkpoint.
    """
    import json
    import signal

    import torch
    import torch.distributed as dist

    from coir.pipeline.distributed import DEFAULT_TIMEOUT_S, process_group

    folder = Path(run_dir) / "selftest"
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / "checkpoint.json"
    step = json.loads(ckpt.read_text())["step"] if resume == "auto" and ckpt.is_file() else 0
    stop: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, _frame: stop.append(signum))
        for s in (signal.SIGUSR2, signal.SIGTERM)
    }
    status = "completed"
    try:
        with process_group(use_cuda=False, timeout_s=DEFAULT_TIMEOUT_S):  # the trainer's set-up, on gloo
            rank, world = dist.get_rank(), dist.get_world_size()
            while step < steps:
                time.sleep(step_s)
                step += 1
                with (folder / f"steps_rank{rank}.log").open("a") as log:
                    log.write(f"{step}\n")
                flag = torch.tensor([1 if stop else 0])
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                if flag.item():
                    status = "preempted"
                    break
            if rank == 0:
                write_text_atomic(ckpt, json.dumps({"step": step}))
            dist.barrier()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return {
        "status": status,
        "step": step,
        "samples_seen": step * world,
        "rank": rank,
        "world_size": world,
        "checkpoint": str(ckpt),
        "export_dir": None,
    }

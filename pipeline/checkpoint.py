"""Training checkpoints: DeepSpeed state plus what exact resume needs, the last K kept.

Layout of one checkpoint, <checkpoint dir>/step_<8 digits>/:
  DeepSpeed's files (module, ZeRO-partitioned optimizer state, LR scheduler) — engine.save_checkpoint
  rank_<r>.pt     per rank: RNG states (python, numpy, torch CPU and CUDA) and the data StreamState, as
                  tensors and plain data only
  optimizer_by_name.pt  by rank 0: the full AdamW state by parameter name, independent of ZeRO's layout
                  (pipeline/optimizer_state.py), what a new run's checkpoint.init_optimizer_from reads
  coir_card.json  by rank 0: provenance (config, code, weight and data sources, step; pipeline/card.py)
  trainer.json    step, samples seen, epoch, world size, best validation score; written LAST, by rank 0,
                  after every rank finished, so a folder without it (a run killed while saving) is
                  incomplete and never resumed from. Saving over an existing folder of the same step
                  removes its trainer.json first, before any rank writes.

A fresh run (checkpoint.resume null) refuses a checkpoint folder that already holds complete checkpoints:
pruning keeps the newest K by step number, so the new run's checkpoints would be deleted and a later
resume=auto would continue the stale run.

Loading runs no code from the files: rank_<r>.pt and DeepSpeed's files are read with torch's weights-only
unpickler (pipeline/safe_load.py); a file that holds anything else is refused, naming it.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coir.common.atomic import atomic_path, write_bytes_atomic
from coir.common.errors import ConfigError, MissingInputError
from coir.pipeline import distributed
from coir.pipeline.safe_load import deepspeed_loads_weights_only, load_weights_only

log = logging.getLogger("coir.checkpoint")

PREFIX = "step_"
MARKER = "trainer.json"
OPTIMIZER_BY_NAME = "optimizer_by_name.pt"


def tag_of(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def step_of(path: Path) -> int:
    return int(path.name[len(PREFIX) :])


def _is_step_dir(path: Path) -> bool:
    return path.is_dir() and path.name.startswith(PREFIX) and path.name[len(PREFIX) :].isdigit()


def complete(directory: str | Path) -> list[Path]:
    """Complete checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _is_step_dir(p) and (p / MARKER).is_file()]
    return sorted(found, key=step_of)


def newest(directory: str | Path) -> Path | None:
    found = complete(directory)
    return found[-1] if found else None


def resolve_resume(resume: str | None, directory: Path) -> Path | None:
    """The checkpoint to resume from: None (fresh), "auto" (newest complete one, if any), or a path."""
    if resume in (None, ""):
        return None
    if resume == "auto":
        return newest(directory)
    path = Path(resume)
    if path.is_dir() and not (path / MARKER).is_file():
        inner = newest(path)  # a checkpoint *directory* holding step_* folders
        if inner is not None:
            return inner
    if not (path / MARKER).is_file():
        raise MissingInputError(path / MARKER, "complete checkpoint (checkpoint.resume)")
    return path


def refuse_fresh_start_over(resume: str | None, directory: Path) -> None:
    """ConfigError when a fresh run (no resume) would write into a folder holding complete checkpoints."""
    if resume not in (None, ""):
        return
    found = complete(directory)
    if found:
        raise ConfigError(
            f"key 'checkpoint.resume': the checkpoint dir {directory} already holds {len(found)} complete "
            f"checkpoint(s) of an earlier run (newest: {found[-1].name}); a fresh run would overwrite and "
            "prune them. Pass --resume auto (checkpoint.resume=auto) to continue that run, or choose another "
            "run_dir (or checkpoint.dir) for a new one"
        )


def rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain data (what a weights-only load reads back)."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [str(name), keys.tolist(), int(position), int(has_gauss), float(cached_gaussian)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    engine: Any,
    directory: Path,
    step: int,
    trainer_state: dict[str, Any],
    rank_state: dict[str, Any],
    rank: int,
    keep_last: int,
    card: dict[str, Any] | None = None,
    optimizer_by_name: dict[str, Any] | None = None,
) -> Path:
    """Collective: every rank calls it at the same step. Returns the checkpoint folder.
    `optimizer_by_name` (rank 0's; None before the optimizer's first step) is written beside DeepSpeed's
    files, and rank 0's provenance `card` (coir_card.json, pipeline/card.py) before trainer.json."""
    import io

    directory.mkdir(parents=True, exist_ok=True)
    tag = tag_of(step)
    path = directory / tag
    if rank == 0:
        # an older save of this step (resumed from an earlier checkpoint, or re-saved after validation):
        # mark it incomplete before any rank replaces its files, so a crash mid-save cannot leave the old
        # trainer.json beside new DeepSpeed or rank files
        (path / MARKER).unlink(missing_ok=True)
    distributed.barrier()
    engine.save_checkpoint(str(directory), tag=tag, client_state={"coir": trainer_state})
    path.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(rank_state, buffer)
    write_bytes_atomic(path / f"rank_{rank:05d}.pt", buffer.getvalue())
    if rank == 0:
        if optimizer_by_name is None:
            (path / OPTIMIZER_BY_NAME).unlink(missing_ok=True)
        else:
            with atomic_path(path / OPTIMIZER_BY_NAME) as tmp:
                torch.save(optimizer_by_name, tmp)
    distributed.barrier()
    if rank == 0:
        if card is not None:
            from coir.pipeline.card import write_card

            write_card(path, card)
        write_bytes_atomic(path / MARKER, json.dumps(trainer_state, indent=1).encode())
        prune(directory, keep_last)
    distributed.barrier()
    return path


def prune(directory: Path, keep_last: int) -> list[Path]:
    """Keep the newest `keep_last` complete checkpoints; remove every other step folder older than them."""
    kept = complete(directory)[-keep_last:]
    if not kept:
        return []
    newest_kept = step_of(kept[-1])
    removed = []
    for path in directory.iterdir():
        # incomplete folders newer than the newest complete one may be in the middle of being written
        if _is_step_dir(path) and path not in kept and step_of(path) < newest_kept:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.info("removed old checkpoints: %s", ", ".join(p.name for p in sorted(removed, key=step_of)))
    return removed


def load(engine: Any, path: Path, rank: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Load DeepSpeed state into `engine`; return (trainer state, this rank's state or None). Every file is
    read weights-only: DataFormatError naming a file that holds more than tensors and plain data."""
    rank_file = path / f"rank_{rank:05d}.pt"
    rank_state = load_weights_only(rank_file) if rank_file.is_file() else None
    with deepspeed_loads_weights_only(engine):
        engine.load_checkpoint(
            str(path.parent), tag=path.name, load_optimizer_states=True, load_lr_scheduler_states=True
        )
    trainer_state = json.loads((path / MARKER).read_text())
    return trainer_state, rank_state

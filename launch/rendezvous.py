"""The master port of a launched job, chosen free by rank 0 and shared through the job's folder.

A port derived from the job id (submitit's default) is the same number for every job with that id
and can be held by anything else on the master node; rank 0 then fails with EADDRINUSE. Instead,
rank 0 asks the OS for a free port on its node and writes it, atomically, to a file in the
submitit folder (shared by every node, as submitit requires); the other ranks wait for that file.
One file per job attempt (job id, SLURM restart count, coir requeue count), so a requeued job never
reads the port of the attempt before it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from coir.common.atomic import write_text_atomic
from coir.common.errors import CoirError
from coir.pipeline.distributed import free_port

DEFAULT_WAIT_S = 600.0


def port_file(folder: str | Path, job_id: str, requeues: int) -> Path:
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    return Path(folder) / "rendezvous" / f"{job_id}.restart{restarts}.requeue{requeues}.port"


def agree_on_port(path: Path, rank: int, wait_s: float = DEFAULT_WAIT_S, poll_s: float = 0.1) -> int:
    """Rank 0: pick a free port and publish it at `path`; other ranks: wait for it and read it."""
    if rank == 0:
        port = free_port()
        write_text_atomic(path, f"{port}\n")  # fsynced: other nodes read it through the shared folder
        return port
    deadline = time.monotonic() + wait_s
    while True:
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = ""
        if text:
            try:
                return int(text)
            except ValueError as error:
                raise CoirError(f"{path}: not a port number: {text!r}") from error
        if time.monotonic() > deadline:
            raise CoirError(
                f"rank {rank}: rank 0 did not publish the master port in {path} within {wait_s:.0f} s "
                "(did rank 0 start? see its log with `coir launch logs RUN --task 0 --err`)"
            )
        time.sleep(poll_s)

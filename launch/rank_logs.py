"""Per-rank logs: every line a task writes, on stdout and stderr, starts with its rank, host and
SLURM ids, e.g. `[rank 1/2 host node07 job 1234_5 step 0 task 1] `.

Each task of a job writes its own files (submitit's RUN_DIR/submitit/<job>_<task>_log.out and .err;
`coir launch logs RUN_DIR --task N` shows them). `install_prefix` is the first thing a launched task
does: it points file descriptors 1 and 2 at pipes read by a small reader process per stream that
prefixes each line (and each carriage-return update of a progress bar) and writes it to the task's
file. Working at the descriptor level, it covers Python's prints and logging, C++ libraries (NCCL,
gloo, DeepSpeed's ops) and child processes (data readers) alike. The readers ignore SLURM's signals
(SIGUSR2, SIGTERM go to every process of a job step) and end when the last writer is gone; the task
waits for them to take its last lines before it exits.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
from typing import Any

from coir.common.std_pipes import drain_std_pipes

# stdlib only, run with -I -S: starts in milliseconds and imports nothing of the task's environment
_READER = r"""
import os, re, sys
prefix, fd, at_start = sys.argv[1].encode(), 1, True
while True:
    data = os.read(0, 65536)
    if not data:
        break
    out = bytearray()
    for part in re.split(rb"(\r\n|\n|\r)", data):
        if part in (b"\n", b"\r", b"\r\n"):
            out += part
            at_start = True
        elif part:
            out += (prefix if at_start else b"") + part
            at_start = False
    view = memoryview(bytes(out))
    while view:
        view = view[os.write(fd, view):]
"""
_READERS: list[subprocess.Popen] = []  # kept: a dropped Popen of a running process warns
_IGNORED = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def task_prefix(env: Any) -> str:
    """The line prefix of a task from its submitit JobEnvironment (SLURM or local)."""
    head = f"[rank {env.global_rank}/{env.num_tasks} host {socket.gethostname()}"
    if env.cluster == "slurm":
        step = os.environ.get("SLURM_STEP_ID", "?")
        return f"{head} job {env.job_id} step {step} task {os.environ.get('SLURM_PROCID', env.global_rank)}] "
    return f"{head} {env.cluster} job {env.job_id}] "


def _ignore_signals() -> None:
    for signum in _IGNORED:  # ignored dispositions survive exec: no window before the reader starts
        signal.signal(signum, signal.SIG_IGN)


def install_prefix(prefix: str) -> None:
    """From now on every line written to fds 1 and 2 (by anything in this process or its children)
    starts with `prefix`."""
    drain_std_pipes(timeout_s=1.0)
    for fd in (1, 2):
        read_end, write_end = os.pipe()
        target = os.dup(fd)
        reader = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _READER, prefix],
            stdin=read_end,
            stdout=target,
            stderr=subprocess.DEVNULL,
            preexec_fn=_ignore_signals,
        )
        _READERS.append(reader)
        os.dup2(write_end, fd)
        for handle in (read_end, write_end, target):
            os.close(handle)
    atexit.register(drain_std_pipes)

"""Hang detection for multi-rank training: per-rank heartbeats and a watchdog that names the rank that
stopped advancing and ends the process fast, instead of every rank waiting in a collective until the job's
time limit.

Every rank writes <run_dir>/heartbeat/rank<r>.json (rank, host, pid, SLURM ids, step, phase, times)
every `distributed.heartbeat_every_steps` steps. The training loop also tells the watchdog, in memory
and at no cost, where it is: opening an epoch's readers ("start"), agreeing on a stop ("sync", after
each step and at each epoch's start), fetching a batch ("data") or computing it ("compute", where the
gradient collectives are). A thread per rank checks that position; when
it has not moved for `distributed.stall_timeout_s` (validation, checkpoints and exports excepted: one
rank works alone there while the others wait), the thread writes a stall report into its heartbeat
file, waits a few polls for the other ranks' reports, and judges (`judge`):

  - a rank without a fresh report is not responding (its process is stopped, dead, or blocked without
    releasing the interpreter): it is the one the others wait for;
  - otherwise the ranks furthest behind (a rank still fetching data while the others compute) stopped
    advancing;
  - all at the same place: every rank is stuck in the same step (a collective or device hang).

The verdict goes to stderr and the log, and to <run_dir>/heartbeat/stall.json; then the process exits
with EXIT_STALLED (under SLURM, --kill-on-bad-exit ends the other tasks of the job). The heartbeat
folder must be visible to every rank (a shared file system, like the checkpoints).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coir.common.atomic import write_text_atomic
from coir.common.std_pipes import drain_std_pipes

log = logging.getLogger("coir.watchdog")

EXIT_STALLED = 86
# the order of the parts of an epoch's step; with (epoch, completed steps, micro-step) a position
PHASES = ("start", "sync", "data", "compute")
HEARTBEAT_DIR = "heartbeat"
VERDICT_FILE = "stall.json"


def slurm_ids() -> dict[str, str]:
    """The SLURM (or submitit) ids of this process, those that are set."""
    names = {
        "job": "SLURM_JOB_ID",
        "array_job": "SLURM_ARRAY_JOB_ID",
        "array_task": "SLURM_ARRAY_TASK_ID",
        "step": "SLURM_STEP_ID",
        "task": "SLURM_PROCID",
    }
    return {key: os.environ[name] for key, name in names.items() if name in os.environ}


def heartbeat_path(run_dir: str | Path, rank: int) -> Path:
    return Path(run_dir) / HEARTBEAT_DIR / f"rank{rank}.json"


def read_heartbeats(run_dir: str | Path, world_size: int) -> dict[int, dict[str, Any] | None]:
    """rank -> its heartbeat record (None: no file, or one being replaced / unreadable)."""
    records: dict[int, dict[str, Any] | None] = {}
    for rank in range(world_size):
        try:
            records[rank] = json.loads(heartbeat_path(run_dir, rank).read_text())
        except (OSError, ValueError):
            records[rank] = None
    return records


@dataclass(frozen=True)
class Verdict:
    culprits: list[int]
    reasons: dict[int, str]
    message: str


def _position(record: dict[str, Any]) -> tuple[int, int, int, int]:
    phase = record.get("phase")
    index = PHASES.index(phase) if phase in PHASES else 0
    return int(record.get("epoch", 0)), int(record.get("step", 0)), int(record.get("micro", 0)), index


def _where(record: dict[str, Any]) -> str:
    step, phase = int(record.get("step", 0)), record.get("phase")
    if phase == "start":
        return f"opening the data readers of epoch {record.get('epoch', 0)}"
    if phase == "sync":
        return f"agreeing on a stop after step {step}"
    if phase == "data":
        return f"fetching the batch of step {step + 1}"
    if phase == "compute":
        return f"computing step {step + 1}"
    return f"after step {step}"


def _who(rank: int, record: dict[str, Any] | None) -> str:
    if record is None:
        return f"rank {rank}"
    ids = record.get("slurm") or {}
    job = f", SLURM job {ids['job']} task {ids.get('task', '?')}" if "job" in ids else ""
    return f"rank {rank} (host {record.get('host', '?')}, pid {record.get('pid', '?')}{job})"


def judge(records: dict[int, dict[str, Any] | None], now: float, fresh_s: float) -> Verdict:
    """Which ranks the others wait for, from every rank's heartbeat record (see the module text)."""
    reporting = {
        rank: record
        for rank, record in records.items()
        if record is not None and record.get("stalled") and now - float(record.get("time", 0)) <= fresh_s
    }
    reasons: dict[int, str] = {}
    silent = [rank for rank in records if rank not in reporting]
    for rank in silent:
        record = records[rank]
        if record is None:
            reasons[rank] = "not responding: no heartbeat file"
        else:
            age = now - float(record.get("time", now))
            reasons[rank] = (
                f"not responding: last heartbeat {age:.0f} s ago, {_where(record)} "
                f"(step {record.get('step')} completed)"
            )
    if silent:
        culprits = silent
    else:
        lowest = min(_position(record) for record in reporting.values())
        culprits = sorted(rank for rank, record in reporting.items() if _position(record) == lowest)
        everyone = len(culprits) == len(reporting)
        for rank in culprits:
            record = reporting[rank]
            stuck = now - float(record.get("since", now))
            reasons[rank] = f"stopped advancing: {_where(record)} for {stuck:.0f} s" + (
                " like every other rank (a collective or device hang)" if everyone else ""
            )
    waiting = [
        f"{_who(rank, record)} {_where(record)}" for rank, record in reporting.items() if rank not in culprits
    ]
    lines = [f"{_who(rank, records[rank])} {reasons[rank]}" for rank in culprits]
    message = "training stalled: " + "; ".join(lines)
    if waiting:
        message += ". Waiting for it: " + "; ".join(waiting)
    return Verdict(culprits, reasons, message)


class Watchdog:
    """Heartbeats and stall detection of one rank (see the module text). Use as a context manager
    around the training loop; `progress` at each step part, `beat` after each step, `paused()` around
    phases where one rank works alone."""

    def __init__(
        self,
        run_dir: str | Path,
        rank: int,
        world_size: int,
        every_steps: int,
        stall_timeout_s: float,
        exit: Callable[[int], Any] = os._exit,
    ) -> None:
        self.path = heartbeat_path(run_dir, rank)
        self.run_dir = Path(run_dir)
        self.rank, self.world_size = rank, world_size
        self.every_steps, self.stall_timeout_s = every_steps, stall_timeout_s
        self.poll_s = max(0.5, min(10.0, stall_timeout_s / 10))
        self._exit = exit
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"epoch": 0, "step": 0, "micro": 0, "phase": "start"}
        self._since = time.time()
        self._paused = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._identity = {
            "rank": rank,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slurm": slurm_ids(),
        }

    # -- the training loop's side -----------------------------------------------------------------
    def progress(self, epoch: int, step: int, phase: str, micro: int = 0) -> None:
        """Where the loop is: `step` optimizer steps completed, `phase` one of PHASES."""
        with self._lock:
            self._state = {"epoch": epoch, "step": step, "micro": micro, "phase": phase}
            self._since = time.time()

    def beat(self, epoch: int, step: int) -> None:
        """After optimizer step `step`: the heartbeat file every `every_steps` steps."""
        self.progress(epoch, step, "sync")
        if step % self.every_steps == 0:
            self._write(stalled=False)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            self._paused += 1
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1
                self._since = time.time()

    def __enter__(self) -> Watchdog:
        self._since = time.time()
        self._write(stalled=False)
        if self.world_size > 1 and self.stall_timeout_s > 0:
            self._thread = threading.Thread(target=self._watch, name="coir-watchdog", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s * 2)

    # -- the watching thread ------------------------------------------------------------------------
    def _write(self, stalled: bool) -> None:
        with self._lock:
            record = {**self._identity, **self._state, "since": self._since, "stalled": stalled}
        record["time"] = time.time()
        with contextlib.suppress(OSError):  # a heartbeat is never worth failing a healthy step
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(record) + "\n")

    def _stalled_for(self) -> float:
        with self._lock:
            return 0.0 if self._paused else time.time() - self._since

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self._stalled_for() < self.stall_timeout_s:
                continue
            verdict = self._collect()
            if verdict is not None:
                self._fail(verdict)
                return

    def _collect(self) -> Verdict | None:
        """Report this rank stalled, wait for the others' reports; the verdict (None: moving again)."""
        fresh_s = 3 * self.poll_s
        deadline = time.time() + 2 * fresh_s
        while True:
            if self._stalled_for() < self.stall_timeout_s:
                self._write(stalled=False)
                return None
            self._write(stalled=True)
            records = read_heartbeats(self.run_dir, self.world_size)
            now = time.time()
            everyone = all(
                r is not None and r.get("stalled") and now - float(r.get("time", 0)) <= fresh_s
                for r in records.values()
            )
            if everyone or now >= deadline:
                return judge(records, now, fresh_s)
            time.sleep(self.poll_s)

    def _fail(self, verdict: Verdict) -> None:
        text = f"[rank {self.rank}] watchdog: {verdict.message}; ending this process (exit {EXIT_STALLED})"
        log.error(text)
        if not log.hasHandlers():  # the message must reach the log whatever the logging set-up
            print(text, file=sys.stderr, flush=True)
        payload = {"culprits": verdict.culprits, "reasons": verdict.reasons, "message": verdict.message}
        with contextlib.suppress(OSError):
            write_text_atomic(
                self.run_dir / HEARTBEAT_DIR / VERDICT_FILE, json.dumps(payload, indent=1) + "\n"
            )
        drain_std_pipes()
        # the main thread is blocked in a collective that cannot be interrupted from Python: end here
        self._exit(EXIT_STALLED)

"""A run directory's jobs: RUN_DIR/jobs.json written at submission, read by status, logs and cancel.

    RUN_DIR/jobs.json      {"jobs": [{"kind", "job_id", "cluster", "folder", "num_tasks", "submitted",
                                      "depends_on", "description"}, ...]}
    RUN_DIR/submitit/      submitit's pickles and logs: <job_id>_<task>_log.{out,err}, and each task's
                           result as JSON, <job_id>_<task>_result.json (launch/results.py)

State comes from the result JSON and from SLURM (squeue, scontrol) or the local controller's pid; no
pickle is ever read here (submitit's <job_id>_<task>_result.pkl could run code when unpickled).

Job ids are SLURM's ("1234", "1234_5" for array task 5) or, for the local executor, the pid of
submitit's controller process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coir.common.atomic import write_text_atomic
from coir.common.errors import DataFormatError, MissingInputError

JOBS_FILE = "jobs.json"


@dataclass
class JobRecord:
    kind: str  # train | eval | eval-collect | lasco-build | lasco-finalize | data-<command>
    job_id: str
    cluster: str  # slurm | local
    folder: str  # submitit folder of the job (pickles and logs)
    num_tasks: int = 1
    submitted: str = ""
    depends_on: list[str] = field(default_factory=list)
    description: str = ""

    def paths(self, task: int = 0) -> Any:
        from submitit.core.utils import JobPaths

        return JobPaths(self.folder, job_id=self.job_id, task_id=task)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def jobs_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / JOBS_FILE


def read_jobs(run_dir: str | Path) -> list[JobRecord]:
    path = jobs_path(run_dir)
    if not path.is_file():
        raise MissingInputError(path, "jobs file of a run directory (is it a `coir launch` run?)")
    try:
        data = json.loads(path.read_text())
        return [JobRecord(**item) for item in data["jobs"]]
    except (ValueError, KeyError, TypeError) as error:
        raise DataFormatError(path, f"not a jobs file: {error}") from error


def add_jobs(run_dir: str | Path, records: list[JobRecord]) -> Path:
    """Append `records` to RUN_DIR/jobs.json (atomically)."""
    path = jobs_path(run_dir)
    existing = read_jobs(run_dir) if path.is_file() else []
    payload = {"jobs": [asdict(r) for r in existing + records]}
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
    return path


# -- state ----------------------------------------------------------------------------------------
def _run(argv: list[str]) -> str | None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def _slurm_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{job id: (state, reason)} for the jobs SLURM still knows (squeue, then scontrol for finished ones)."""
    states: dict[str, tuple[str, str]] = {}
    if not job_ids:
        return states
    out = _run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%r", "-j", ",".join(sorted(set(job_ids)))])
    for line in (out or "").splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    for job_id in job_ids:
        if job_id in states:
            continue
        found = _run(["scontrol", "-o", "show", "job", job_id])
        if found:
            fields = dict(item.split("=", 1) for item in found.split() if "=" in item)
            states[job_id] = (fields.get("JobState", "UNKNOWN"), fields.get("Reason", ""))
        elif out is None:  # squeue failed too: SLURM may be busy; Submission.wait waits a while
            states[job_id] = ("UNKNOWN", "squeue and scontrol failed (SLURM busy or unreachable?)")
    return states


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True


def job_state(record: JobRecord, slurm_states: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """{"state", "reason", "result"}: the result file wins (COMPLETED/FAILED), then the scheduler."""
    from coir.launch.results import read_result, result_path

    outcome = read_result(result_path(record.paths()))
    if outcome is not None:
        status, value = outcome
        if status == "success":
            return {"state": "COMPLETED", "reason": "", "result": value}
        last_line = str(value).strip().splitlines()[-1] if str(value).strip() else ""
        return {"state": "FAILED", "reason": last_line, "result": None}
    if record.cluster == "local":
        state = "RUNNING" if _pid_alive(record.job_id) else "ENDED (no result: killed or cancelled)"
        return {"state": state, "reason": "", "result": None}
    states = slurm_states if slurm_states is not None else _slurm_states([record.job_id])
    state, reason = states.get(record.job_id, ("UNKNOWN", "no longer known to SLURM and no result file"))
    return {"state": state, "reason": "" if reason == "None" else reason, "result": None}


def run_status(run_dir: str | Path) -> list[dict[str, Any]]:
    records = read_jobs(run_dir)
    slurm = _slurm_states([r.job_id for r in records if r.cluster == "slurm"])
    return [{"record": r, **job_state(r, slurm)} for r in records]


def _summary(result: Any) -> str:
    if isinstance(result, dict):
        keys = [k for k in ("status", "step", "samples_seen", "export_dir", "world_size") if k in result]
        if keys:
            return " ".join(f"{k}={result[k]}" for k in keys)
        return f"{len(result)} entries"
    return "" if result is None else str(result)[:80]


def format_status(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'job':<14} {'kind':<15} {'tasks':>5}  {'state':<12} details"]
    for row in rows:
        record: JobRecord = row["record"]
        detail = row["reason"] or _summary(row["result"])
        lines.append(
            f"{record.job_id:<14} {record.kind:<15} {record.num_tasks:>5}  {row['state']:<12} {detail}"
        )
    return "\n".join(lines)


# -- logs and cancel --------------------------------------------------------------------------------
def select(records: list[JobRecord], job: str | None) -> list[JobRecord]:
    """Records whose id or kind is `job` (all when None)."""
    if job is None:
        return records
    chosen = [r for r in records if job in (r.job_id, r.kind)]
    if not chosen:
        known = ", ".join(f"{r.job_id} ({r.kind})" for r in records)
        raise MissingInputError(job, f"job in this run (known: {known}); job")
    return chosen


def log_paths(record: JobRecord, task: int | None = None) -> list[tuple[int, Path, Path]]:
    tasks = range(record.num_tasks) if task is None else [task]
    return [(t, record.paths(t).stdout, record.paths(t).stderr) for t in tasks]


def tail(path: Path, lines: int) -> str:
    if not path.is_file():
        return "(not written yet)"
    content = path.read_text(errors="replace").splitlines()
    return "\n".join(content[-lines:]) if lines > 0 else "\n".join(content)


def cancel(records: list[JobRecord]) -> list[str]:
    """Cancel the jobs (scancel; SIGINT to a local controller). Returns the ids signalled."""
    done = []
    slurm_ids = [r.job_id for r in records if r.cluster == "slurm"]
    if slurm_ids:
        subprocess.run(["scancel", *slurm_ids], check=False)
        done += slurm_ids
    for record in records:
        if record.cluster == "local" and _pid_alive(record.job_id):
            os.kill(int(record.job_id), signal.SIGINT)
            done.append(record.job_id)
    return done

"""Each task's result as JSON, written by the task itself (task.py) and read by `coir launch status`,
`Submission.wait` and the collecting jobs (LaSCo finalize, eval collect).

    <submitit folder>/<job_id>_<task>_result.json   {"status": "success", "value": ...}
                                                     {"status": "error", "value": "<traceback>"}

submitit writes its own `<job_id>_<task>_result.pkl` beside it; coir never reads those: unpickling a file
found in a run folder would run whatever code it names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coir.common.atomic import write_text_atomic

STATUSES = ("success", "error")


def result_path(paths: Any) -> Path:
    """The result file of one task, from its submitit JobPaths (folder, job id, task id)."""
    return Path(paths.folder) / f"{paths.job_id}_{paths.task_id}_result.json"


def _plain(value: Any) -> Any:
    """JSON for what json cannot write itself: paths and numpy numbers as their plain values, else str."""
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)


def write_result(path: str | Path, status: str, value: Any) -> Path:
    """Atomically (temp + rename), so that a reader never sees half a result."""
    if status not in STATUSES:
        raise ValueError(f"result status must be one of {STATUSES}, got {status!r}")
    write_text_atomic(Path(path), json.dumps({"status": status, "value": value}, default=_plain) + "\n")
    return Path(path)


def read_result(path: str | Path) -> tuple[str, Any] | None:
    """(status, value) of a result file; None while absent. A file that is not such a result reads as an
    error naming it (it was not written by a coir task)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        status, value = data["status"], data["value"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        return "error", f"{path}: not a coir result file ({error})"
    if status not in STATUSES:
        return "error", f"{path}: unknown result status {status!r}"
    return status, value

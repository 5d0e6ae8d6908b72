"""The callable every launched job runs: distributed set-up, the target function, preemption.

`LaunchedTask(target, kwargs, ...)` is what submitit pickles. In each task it prefixes every line of
the task's output with its rank, host and SLURM ids (rank_logs.py), exports the torch.distributed
variables (distributed.py), imports `target` ("module:function") and calls it, and writes what it
returned (or the traceback) as the task's result JSON (launch/results.py), which status, wait and the
collecting jobs read instead of submitit's result pickle.

Preemption and time limits. SLURM sends SIGUSR2 to every task (`--signal=USR2@<delay>` before the
time limit, or `scancel --signal=USR2`; a preemption sends SIGTERM). submitit installs a USR2
handler when the task starts; the trainer installs its own (for USR2 and SIGTERM) once it is built,
replacing submitit's while it trains. So:

1. While the trainer runs: its handler only sets a flag; at the next step boundary the ranks agree,
   write the checkpoint together and train() returns {"status": "preempted", ...} on every rank.
   Then (and only then, the checkpoint being complete on disk) rank 0 rewrites the job's pickle with
   `resumed()` (one more requeue counted, `resume="auto"`) and requeues the job (`scontrol requeue`
   for SLURM; for the local executor the requeue exit code makes submitit's controller restart the
   tasks). The other ranks wait to be stopped by the requeue. After `max_requeues` requeues a
   preempted result ends the job with an error that says how to resume by hand.
   A job cancelled with `scancel` gets SIGTERM too, so the trainer saves and returns "preempted":
   rank 0 therefore requeues only a job SLURM still calls RUNNING (a time-limit warning or an
   explicit `scancel --signal=USR2`), never one it is ending (COMPLETING: cancelled, or preempted
   and requeued by SLURM itself).
2. Before the trainer installed its handler (imports, model build) or after it returned: submitit's
   handler calls `checkpoint()` (this is a submitit Checkpointable), which returns `resumed()`: the
   job is requeued at once. Nothing is lost since the trainer resumes from its newest checkpoint.
   Jobs without a handler of their own take this path too: a LaSCo range resumes from its finished
   shards, an evaluation cell starts again.

A preemption under PreemptMode=REQUEUE sends SIGTERM, which the trainer handles like SIGUSR2; SLURM
then requeues the job itself (our own request is refused and ignored) once the ranks have saved,
provided the partition's GraceTime leaves time for one step and a checkpoint. Such a requeue (and one
after a node failure, with --requeue) re-runs the pickle as first submitted, so training and selftest
jobs carry resume="auto" from their first attempt (api.submit_train; harmless without a checkpoint).

A requeued job keeps its id and its log files (opened in append mode); SLURM delays its start by
about two minutes (pending, reason BeginTime).
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from submitit.helpers import Checkpointable, DelayedSubmission

from coir.common.atomic import atomic_path
from coir.launch.results import result_path, write_result

LOGGER = logging.getLogger("coir.launch")
WAIT_FOR_REQUEUE_S = 300  # a task that asked for (or waits for) the requeue waits this long to be stopped


def import_target(target: str) -> Any:
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)


class LaunchedTask(Checkpointable):
    def __init__(
        self,
        target: str,
        kwargs: dict[str, Any] | None = None,
        distributed: bool = False,
        gpus_per_node: int = 0,
        max_requeues: int = 3,
        resume_kwargs: dict[str, Any] | None = None,
        requeues: int = 0,
    ) -> None:
        self.target = target
        self.kwargs = dict(kwargs or {})
        self.distributed = distributed
        self.gpus_per_node = gpus_per_node
        self.max_requeues = max_requeues
        self.resume_kwargs = dict(resume_kwargs or {})
        self.requeues = requeues

    def __repr__(self) -> str:
        return f"LaunchedTask({self.target}, requeues={self.requeues}/{self.max_requeues})"

    # -- running --------------------------------------------------------------------------------
    def __call__(self) -> Any:
        if os.environ.get("SUBMITIT_FOLDER"):  # run by submitit (not in-process by a test)
            from submitit import JobEnvironment

            from coir.launch.rank_logs import install_prefix, task_prefix

            install_prefix(task_prefix(JobEnvironment()))
        result_file = _own_result_file()
        if result_file is not None:
            result_file.unlink(missing_ok=True)  # an earlier attempt's (a job SLURM requeued itself)
        try:
            result = self._run()
        except Exception:
            if result_file is not None:
                write_result(result_file, "error", traceback.format_exc())
            raise
        if result_file is not None:
            write_result(result_file, "success", result)
        return result

    def _run(self) -> Any:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
        if self.distributed:
            from coir.launch.distributed import export_torch_env

            values = export_torch_env(self.gpus_per_node, self.requeues)
            LOGGER.info("distributed: %s", " ".join(f"{k}={v}" for k, v in values.items()))
        if self.requeues:
            LOGGER.info(
                "attempt %d (requeued %d of at most %d times)",
                self.requeues + 1,
                self.requeues,
                self.max_requeues,
            )
        result = import_target(self.target)(**self.kwargs)
        if isinstance(result, dict) and result.get("status") == "preempted":
            self._requeue_after_checkpoint(result)
        return result

    # -- requeue --------------------------------------------------------------------------------
    def resumed(self) -> LaunchedTask | None:
        """This task for its next attempt (resumes from the newest checkpoint); None when out of requeues."""
        if self.requeues >= self.max_requeues:
            return None
        task = copy.deepcopy(self)
        task.requeues += 1
        task.kwargs.update(self.resume_kwargs)
        return task

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission | None:
        """submitit's preemption path (a signal outside the trainer's own handler): requeue resumed."""
        task = self.resumed()
        if task is None:
            LOGGER.warning("signal received but %d requeues were used already: not requeued", self.requeues)
            return None
        LOGGER.warning("signal received: requeueing (attempt %d)", task.requeues + 1)
        return DelayedSubmission(task)

    def _requeue_after_checkpoint(self, result: dict[str, Any]) -> None:
        from submitit import JobEnvironment
        from submitit.core.utils import UncompletedJobError

        task = self.resumed()
        if task is None:
            raise UncompletedJobError(
                f"preempted at step {result.get('step')} after {self.requeues} requeues "
                f"(max_requeues={self.max_requeues}); newest checkpoint: {result.get('checkpoint')}; "
                "submit again with --resume auto (and a higher --max-requeues) to continue from it"
            )
        env = JobEnvironment()
        local = env.cluster == "local"
        if env.global_rank == 0:
            self._rank0_requeue(env, task, result, local)
        elif local:
            from submitit.local.local import LOCAL_REQUEUE_RETURN_CODE

            sys.exit(LOCAL_REQUEUE_RETURN_CODE)  # the controller restarts all tasks
        sys.stdout.flush()
        # SLURM: the requeue (or the cancel) stops every task of the job; returning now would record
        # a stale result
        time.sleep(WAIT_FOR_REQUEUE_S)
        raise UncompletedJobError(
            f"job {env.job_id} was not stopped {WAIT_FOR_REQUEUE_S} s after its requeue"
        )

    @staticmethod
    def _rank0_requeue(env: Any, task: LaunchedTask, result: dict[str, Any], local: bool) -> None:
        state = "" if local else slurm_job_state(env.job_id)
        if state not in ("", "RUNNING"):
            # SLURM is ending the job: scancel (its SIGTERM reaches the trainer like a preemption's) or a
            # preemption SLURM requeues by itself; either way a requeue of ours would be wrong
            LOGGER.warning(
                "job %s is %s (cancelled or preempted): checkpoint written, not requeued", env.job_id, state
            )
            return
        paths = env.paths
        current = DelayedSubmission.load(paths.submitted_pickle)
        delayed = DelayedSubmission(task)
        delayed.set_timeout(current._timeout_min, current._timeout_countdown)
        with atomic_path(paths.submitted_pickle) as tmp:  # the next attempt runs `task` (resume="auto")
            delayed.dump(tmp)
        LOGGER.warning(
            "preempted at step %s, checkpoint %s written: requeueing job %s (requeue %d of %d)",
            result.get("step"),
            result.get("checkpoint"),
            env.job_id,
            task.requeues,
            task.max_requeues,
        )
        sys.stdout.flush()
        try:
            env._requeue(current._timeout_countdown)  # SLURM: scontrol requeue; local: exits to restart
        except (OSError, subprocess.SubprocessError) as error:
            LOGGER.warning("requeue request failed (%s); waiting for SLURM to stop the job", error)


def _own_result_file() -> Path | None:
    """This task's result JSON inside a submitit job; None when called directly (no job folder)."""
    if "SUBMITIT_FOLDER" not in os.environ:
        return None
    from submitit import JobEnvironment

    return result_path(JobEnvironment().paths)


def slurm_job_state(job_id: str) -> str:
    """JobState as `scontrol show job` gives it (RUNNING, CANCELLED, ...); "" when unknown."""
    try:
        out = subprocess.run(
            ["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    fields = dict(item.split("=", 1) for item in out.split() if "=" in item)
    return fields.get("JobState", "")

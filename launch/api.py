"""Submitting the stages: the library behind `coir launch` (tests and scripts call it directly).

    sub = submit_train("configs/pretrain/case_tiny.yaml", ["optim.total_steps=8"], cluster, "runs/x")
    sub = submit_lasco(lasco_flags, cluster, "runs/lasco-build", array=8)
    sub = submit_eval(["runs/a/export"], ["cirr"], EvalConfig(), {"cirr": "W/cirr"}, cluster, "runs/ev")
    sub.wait()        # optional: block until every job ended; returns their results

Every submission writes RUN_DIR/jobs.json (see runs.py) and keeps submitit's files in
RUN_DIR/submitit/. A job whose time runs out or that is preempted comes back by itself (task.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coir.common.errors import CoirError, ConfigError, MissingInputError
from coir.eval.config import EvalConfig
from coir.launch.cluster_config import ClusterConfig
from coir.launch.executor import make_executor
from coir.launch.results import result_path
from coir.launch.runs import JobRecord, add_jobs, now
from coir.launch.task import LaunchedTask

JOBS = "coir.launch.jobs"
# scheduler states in which a job may still produce its result (a requeued job is PENDING again)
ACTIVE = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "STAGE_OUT",
    "SIGNALING",
}
# squeue and scontrol both failing (a busy or restarting controller) reads as UNKNOWN: still active
# until it lasted this long in a row
UNKNOWN_GRACE_S = 60.0
_clock = time.monotonic  # replaced by the unit tests
_sleep = time.sleep


class JobFailed(CoirError):
    """A launched job failed, was cancelled or ended without a result."""


@dataclass
class Submission:
    run_dir: Path
    records: list[JobRecord]
    jobs: list[Any] = field(default_factory=list)  # submitit Job objects, in the order of records

    def wait(
        self, timeout_s: float | None = None, poll_s: float = 1.0, unknown_grace_s: float = UNKNOWN_GRACE_S
    ) -> list[Any]:
        """Block until every job ended; the result of each (task 0's). Raises JobFailed naming the
        jobs that failed or ended without a result, TimeoutError after `timeout_s`.

        Polls the result files (JSON, launch/results.py) and squeue (not sacct, which many clusters and
        the test SLURM lack).
        A job whose state cannot be read (UNKNOWN: squeue and scontrol failed or forgot it) counts as
        active until it stayed UNKNOWN for `unknown_grace_s` seconds in a row.
        """
        deadline = None if timeout_s is None else _clock() + timeout_s
        unknown_since: dict[int, float] = {}
        while True:
            states = [self._state(record, job) for record, job in zip(self.records, self.jobs, strict=True)]
            now_s = _clock()
            for index, state in enumerate(states):
                if state["state"] == "UNKNOWN":
                    unknown_since.setdefault(index, now_s)
                else:
                    unknown_since.pop(index, None)
            active = [
                i
                for i, s in enumerate(states)
                if s["state"] in ACTIVE or (i in unknown_since and now_s - unknown_since[i] < unknown_grace_s)
            ]
            if not active:
                break
            if deadline is not None and now_s > deadline:
                busy = [f"{self.records[i].job_id} ({states[i]['state']})" for i in active]
                raise TimeoutError(f"jobs still running after {timeout_s:.0f} s: {', '.join(busy)}")
            _sleep(poll_s)
        failed = [
            f"{r.kind} {r.job_id}: {s['state']} {s['reason']}".strip()
            + (f" (for {unknown_grace_s:.0f} s)" if s["state"] == "UNKNOWN" else "")
            for r, s in zip(self.records, states, strict=True)
            if s["state"] != "COMPLETED"
        ]
        if failed:
            raise JobFailed("; ".join(failed) + f" (logs: coir launch logs {self.run_dir} --err)")
        return [s["result"] for s in states]

    def task_results(self, index: int = 0) -> list[Any]:
        """The results of every task (rank) of job `index`, once it completed."""
        from coir.launch.results import read_result, result_path

        record = self.records[index]
        results = []
        for task in range(record.num_tasks):
            outcome = read_result(result_path(record.paths(task)))
            results.append(outcome[1] if outcome is not None and outcome[0] == "success" else None)
        return results

    def _state(self, record: JobRecord, job: Any) -> dict[str, Any]:
        from coir.launch.runs import job_state

        state = job_state(record)
        if record.cluster == "local" and state["state"] == "RUNNING" and job is not None and job.done():
            state = job_state(record)  # the controller exited (reaped by done()); read its result
            if state["state"] == "RUNNING":
                state = {"state": "ENDED", "reason": "no result file", "result": None}
        return state

    def describe(self) -> str:
        lines = [f"run directory: {self.run_dir}", f"jobs file:     {self.run_dir / 'jobs.json'}"]
        for record in self.records:
            paths = record.paths(0)
            lines.append(
                f"{record.kind:<15} job {record.job_id} ({record.num_tasks} task(s), {record.cluster})"
            )
            lines.append(f"    stdout: {paths.stdout}")
            lines.append(f"    stderr: {paths.stderr}")
        if any(r.num_tasks > 1 for r in self.records):
            lines.append("    (task N logs: the same names with _N_ instead of _0_)")
        lines.append(f"follow with: coir launch status {self.run_dir}; coir launch logs {self.run_dir}")
        return "\n".join(lines)


def load_submission(run_dir: str | Path) -> Submission:
    """The jobs recorded in RUN_DIR/jobs.json, to wait on from another process."""
    from coir.launch.runs import read_jobs

    records = read_jobs(run_dir)
    return Submission(Path(run_dir).resolve(), records, [None] * len(records))


def _folder(run_dir: Path) -> Path:
    return run_dir / "submitit"


def _task(
    target: str,
    kwargs: dict[str, Any],
    cluster: ClusterConfig,
    distributed: bool = False,
    resume_kwargs: dict[str, Any] | None = None,
) -> LaunchedTask:
    return LaunchedTask(
        f"{JOBS}:{target}",
        kwargs,
        distributed=distributed,
        gpus_per_node=cluster.gpus_per_node,
        max_requeues=cluster.max_requeues,
        resume_kwargs=resume_kwargs,
    )


def _record(
    job: Any,
    kind: str,
    cluster: ClusterConfig,
    num_tasks: int,
    description: str,
    depends_on: Sequence[str] = (),
) -> JobRecord:
    return JobRecord(
        kind=kind,
        job_id=str(job.job_id),
        cluster=cluster.cluster,
        folder=str(job.paths.folder),
        num_tasks=num_tasks,
        submitted=now(),
        depends_on=list(depends_on),
        description=description,
    )


def _single(cluster: ClusterConfig) -> ClusterConfig:
    """The same request with one task (a collector or finalize step)."""
    from dataclasses import replace

    return replace(cluster, nodes=1, tasks_per_node=1, gpus_per_node=0)


def _dependency(executor: Any, cluster: ClusterConfig, job_ids: Sequence[str]) -> None:
    if cluster.cluster == "slurm" and job_ids:
        executor.update_parameters(
            dependency="afterany:" + ":".join(sorted({j.split("_")[0] for j in job_ids}))
        )


# -- training -------------------------------------------------------------------------------------
def submit_train(
    config: str | Path, overrides: Sequence[str], cluster: ClusterConfig, run_dir: str | Path | None = None
) -> Submission:
    """Submit `coir train CONFIG overrides` as one job of cluster.num_tasks ranks.

    RUN_DIR defaults to the config's run_dir; given, it becomes the trainer's run_dir (checkpoints,
    logs and export land there, beside jobs.json and submitit/). The config is checked here, before
    anything is submitted.
    """
    from coir.pipeline.config import load_train_config

    if run_dir is None:
        run_dir = load_train_config(config, list(overrides)).run_dir
    run_dir = Path(run_dir).resolve()
    overrides = [*overrides, f"run_dir={run_dir}"]  # absolute: the job may start elsewhere
    load_train_config(config, overrides)
    executor = make_executor(cluster, _folder(run_dir), "coir-train")
    # resume="auto" from the first attempt: SLURM requeues (PreemptMode=REQUEUE, a node failure with
    # --requeue) re-run this very pickle, and must resume too (jobs.train: harmless without a checkpoint)
    task = _task(
        "train",
        {"config": str(Path(config).resolve()), "overrides": overrides, "resume": "auto"},
        cluster,
        distributed=True,
        resume_kwargs={"resume": "auto"},
    )
    job = executor.submit(task)
    record = _record(job, "train", cluster, cluster.num_tasks, f"coir train {config} {' '.join(overrides)}")
    add_jobs(run_dir, [record])
    return Submission(run_dir, [record], [job])


def submit_selftest(steps: int, step_s: float, cluster: ClusterConfig, run_dir: str | Path) -> Submission:
    """A stand-in trainer (jobs.selftest): ranks, rendezvous, signals and requeue, with no data or model."""
    run_dir = Path(run_dir).resolve()
    executor = make_executor(cluster, _folder(run_dir), "coir-selftest")
    task = _task(
        "selftest",
        {"run_dir": str(run_dir), "steps": steps, "step_s": step_s, "resume": "auto"},  # as submit_train
        cluster,
        distributed=True,
        resume_kwargs={"resume": "auto"},
    )
    job = executor.submit(task)
    record = _record(job, "selftest", cluster, cluster.num_tasks, f"selftest {steps} steps of {step_s} s")
    add_jobs(run_dir, [record])
    return Submission(run_dir, [record], [job])


# -- any coir command (one job) ---------------------------------------------------------------------
def submit_command(
    words: Sequence[str], args: dict[str, Any], cluster: ClusterConfig, run_dir: str | Path
) -> Submission:
    run_dir = Path(run_dir).resolve()
    kind = "-".join(words)
    executor = make_executor(_single(cluster), _folder(run_dir), f"coir-{kind}")
    job = executor.submit(_task("command", {"words": list(words), "args": args}, cluster))
    record = _record(job, kind, cluster, 1, f"coir {' '.join(words)}")
    add_jobs(run_dir, [record])
    return Submission(run_dir, [record], [job])


# -- LaSCo build as an array ------------------------------------------------------------------------
def submit_lasco(
    flags: dict[str, Any], cluster: ClusterConfig, run_dir: str | Path, array: int
) -> Submission:
    """Build LaSCo shards as `array` tasks (the builder's range split), then merge (finalize) in a job
    that starts when they all ended. `flags`: the `coir data lasco` arguments as its parser gives them."""
    from argparse import Namespace

    from coir.datasets.lasco.cli import load_build_config

    if array < 1:
        raise ConfigError(f"--array must be at least 1, got {array}")
    build = load_build_config(Namespace(**flags))  # checked before submitting
    flags = dict(flags, out=str(Path(build.out).resolve()))
    run_dir = Path(run_dir).resolve()
    single = _single(cluster)
    executor = make_executor(single, _folder(run_dir), "coir-lasco")
    with executor.batch():
        jobs = [
            executor.submit(
                _task("lasco_build", {"args": flags, "task_index": i, "num_tasks": array}, single)
            )
            for i in range(array)
        ]
    records = [
        _record(job, "lasco-build", single, 1, f"lasco range {i} of {array}") for i, job in enumerate(jobs)
    ]
    finalizer = make_executor(single, _folder(run_dir), "coir-lasco-finalize")
    _dependency(finalizer, single, [r.job_id for r in records])
    wait_for = [str(result_path(job.paths)) for job in jobs]
    final = finalizer.submit(
        _task(
            "lasco_finalize",
            {"out": flags["out"], "wait_for": wait_for, "timeout_s": single.timeout_min * 60},
            single,
        )
    )
    records.append(
        _record(final, "lasco-finalize", single, 1, f"merge {flags['out']}", [r.job_id for r in records])
    )
    add_jobs(run_dir, records)
    return Submission(run_dir, records, [*jobs, final])


# -- evaluation sweep -------------------------------------------------------------------------------
def model_names(checkpoints: Sequence[str]) -> list[str]:
    """Short, distinct names for checkpoints: the path parts after their common prefix."""
    parts = [Path(c).resolve().parts for c in checkpoints]
    if len(parts) == 1:
        return [Path(checkpoints[0]).resolve().parent.name + "-" + Path(checkpoints[0]).name]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    return ["-".join(p[common:]) for p in parts]


def _named(value: str) -> tuple[str | None, str]:
    """`NAME=DIR` for a registered benchmark NAME -> (NAME, DIR); a plain DIR -> (None, DIR)."""
    from coir.eval.benchmarks import benchmark_names

    name, sep, path = value.partition("=")
    if not (sep and re.fullmatch(r"[a-z][a-z0-9_-]*", name)):
        return None, value
    if name not in benchmark_names():
        raise ConfigError(f"{value!r}: no benchmark {name!r} (registered: {', '.join(benchmark_names())})")
    return name, path


def data_roots(values: Sequence[str], benchmarks: Sequence[str]) -> dict[str, str]:
    """`--data-root DIR` (DIR/<benchmark> when that exists, else DIR) and/or `--data-root NAME=DIR`."""
    roots: dict[str, str] = {}
    default: str | None = None
    for value in values:
        name, path = _named(value)
        if name is None:
            default = path
        else:
            roots[name] = path
    for benchmark in benchmarks:
        if benchmark in roots:
            continue
        if default is None:
            raise ConfigError(f"no --data-root for {benchmark} (give DIR or {benchmark}=DIR)")
        nested = Path(default) / benchmark
        roots[benchmark] = str(nested if nested.is_dir() else Path(default))
    return {b: str(Path(roots[b]).resolve()) for b in benchmarks}


def image_roots(values: Sequence[str], benchmarks: Sequence[str]) -> dict[str, str]:
    """`--image-root NAME=DIR` for one benchmark, `--image-root DIR` for all."""
    roots: dict[str, str] = {}
    for value in values:
        name, path = _named(value)
        if name is None:
            roots.update(dict.fromkeys(benchmarks, path))
        else:
            roots[name] = path
    return roots


def submit_eval(
    checkpoints: Sequence[str],
    benchmarks: Sequence[str],
    config: EvalConfig,
    roots: dict[str, str],
    cluster: ClusterConfig,
    run_dir: str | Path,
    image_roots: dict[str, str] | None = None,
) -> Submission:
    """One array task per (checkpoint, benchmark), then a job that merges every fragment into
    RUN_DIR/results.json and RUN_DIR/results.md (one table per benchmark/split, a row per checkpoint).

    Each task evaluates `config` (split, batch size, redundancy, benchmark options, every other
    evaluation option) with its cell's checkpoint, benchmark, data root (`roots`), image root
    (`image_roots`, where the images are when not under the data root: real CIRR), model name (from
    the checkpoint paths) and out folder RUN_DIR/eval/<model>/<benchmark>; a device left unset is
    cuda when the tasks get GPUs. Every cell's config is checked before anything is submitted.
    """
    from dataclasses import replace

    from coir.common.config import to_dict
    from coir.eval.config import check_eval_config

    if not checkpoints:
        raise MissingInputError("(empty)", "checkpoint matching --checkpoints")
    for checkpoint in checkpoints:
        if not Path(checkpoint).exists():
            raise MissingInputError(checkpoint, "checkpoint")
    run_dir = Path(run_dir).resolve()
    names = model_names(checkpoints)
    device = config.device or ("cuda" if cluster.gpus_per_node > 0 else "cpu")
    cells = []
    for checkpoint, name in zip(checkpoints, names, strict=True):
        for benchmark in benchmarks:
            image_root = (image_roots or {}).get(benchmark, config.image_root)
            cell = replace(
                config,
                checkpoint=str(Path(checkpoint).resolve()),
                benchmark=benchmark,
                data_root=roots[benchmark],
                image_root=str(Path(image_root).resolve()) if image_root else None,
                model_name=name,
                out=str(run_dir / "eval" / name / benchmark),
                results=None,
                device=device,
            )
            check_eval_config(cell)
            cells.append(cell)
    executor = make_executor(cluster, _folder(run_dir), "coir-eval")
    with executor.batch():
        jobs = [
            executor.submit(
                _task("evaluate", {"config": to_dict(cell)}, cluster, distributed=cluster.num_tasks > 1)
            )
            for cell in cells
        ]
    records = [
        _record(
            job, "eval", cluster, cluster.num_tasks, f"{cell.model_name} on {cell.benchmark}/{cell.split}"
        )
        for job, cell in zip(jobs, cells, strict=True)
    ]
    single = _single(cluster)
    collector = make_executor(single, _folder(run_dir), "coir-eval-collect")
    _dependency(collector, single, [r.job_id for r in records])
    wait_for = [str(result_path(job.paths)) for job in jobs]
    final = collector.submit(
        _task(
            "collect_eval",
            {"run_dir": str(run_dir), "wait_for": wait_for, "timeout_s": single.timeout_min * 60},
            single,
        )
    )
    records.append(
        _record(
            final, "eval-collect", single, 1, f"table {run_dir / 'results.md'}", [r.job_id for r in records]
        )
    )
    add_jobs(run_dir, records)
    return Submission(run_dir, records, [*jobs, final])

"""`coir launch`: run training, evaluation sweeps and data builds as SLURM jobs (or local processes).

    coir launch train  [cluster flags] CONFIG [key=value ...]
    coir launch eval   [cluster flags] --checkpoints GLOB --benchmarks cirr,fashioniq --data-root DIR
    coir launch data lasco [cluster flags] --array N <coir data lasco flags>
    coir launch data synth|shards|inspect [cluster flags] <that command's flags>
    coir launch status|logs|cancel RUN_DIR

Submitting prints the job ids, the run directory and the log paths, and returns (--wait blocks).
"""

from __future__ import annotations

import argparse
import glob
import importlib
import sys
from pathlib import Path
from typing import Any

HELP = "submit train / eval / data jobs to SLURM (or run them locally); status, logs, cancel"
EXAMPLE = """\
coir launch train configs/pretrain/case_base.yaml data.shards=[/data/lasco/triplets] \\
    --cluster-config configs/cluster/example.yaml --nodes 4 --gpus-per-node 8 --time 24:00:00 \\
    --run-dir runs/pt
coir launch eval --checkpoints 'runs/pt/export' --benchmarks cirr --split val --data-root /data/cirr \\
    --cluster-config configs/cluster/example.yaml --gpus-per-node 1 --run-dir runs/pt-cirr
coir launch eval --checkpoints 'runs/*/export' --benchmarks fashioniq,lasco --data-root /data \\
    --caption-orders both mask_reference=true memory_gb=4 --gpus-per-node 1 --run-dir runs/sweep
coir launch data lasco --array 16 --vqa /data/vqa --coco /data/coco --out /data/lasco --split train \\
    --cluster-config configs/cluster/example.yaml --cpus-per-task 8 --run-dir runs/lasco-build
coir launch train configs/pretrain/case_tiny.yaml --cluster local --tasks-per-node 2 --run-dir runs/t --wait
coir launch status runs/pt;  coir launch logs runs/pt --task 0;  coir launch cancel runs/pt"""

# cluster flag -> ClusterConfig key (dest is launch_<key> so that a command's own flags never collide)
CLUSTER_FLAGS: dict[str, tuple[str, type, str]] = {
    "--cluster": ("cluster", str, "slurm (sbatch through submitit) or local (processes here); default slurm"),
    "--nodes": ("nodes", int, "nodes (default 1)"),
    "--gpus-per-node": ("gpus_per_node", int, "GPUs per node; one task (rank) per GPU (default 0)"),
    "--tasks-per-node": ("tasks_per_node", int, "tasks per node when not one per GPU (e.g. CPU ranks)"),
    "--cpus-per-task": ("cpus_per_task", int, "CPUs per task"),
    "--mem-gb": ("mem_gb", float, "memory per node, GB"),
    "--partition": ("partition", str, "SLURM partition"),
    "--account": ("account", str, "SLURM account"),
    "--qos": ("qos", str, "SLURM quality of service"),
    "--time": ("time", str, "time limit, [D-]HH:MM:SS (default 01:00:00)"),
    "--constraint": ("constraint", str, "node features, e.g. 'a100|h100'"),
    "--exclude": ("exclude", str, "nodes to avoid"),
    "--max-requeues": ("max_requeues", int, "requeues after preemption/time limit (default 3)"),
    "--signal-delay": ("signal_delay_s", int, "seconds before the time limit SIGUSR2 arrives (default 120)"),
    "--job-name": ("job_name", str, "SLURM job name (default coir-<kind>)"),
}

# EvalConfig keys `coir launch eval` sets for each (checkpoint, benchmark) task, and those its
# --benchmarks, --data-root and --image-root give per benchmark: no `coir eval` flags for either there
SET_PER_TASK = ("checkpoint", "model_name", "out", "results")
PER_BENCHMARK = ("benchmark", "data_root", "image_root")

METAVARS = {
    "nodes": "N",
    "gpus_per_node": "G",
    "tasks_per_node": "T",
    "cpus_per_task": "C",
    "mem_gb": "GB",
    "time": "HH:MM:SS",
    "max_requeues": "K",
    "signal_delay_s": "S",
    "job_name": "NAME",
    "qos": "QOS",
    "partition": "P",
    "account": "A",
    "constraint": "FEATURES",
    "exclude": "NODES",
}


def _add_cluster_flags(parser: argparse.ArgumentParser, array: bool = False) -> None:
    group = parser.add_argument_group("cluster (defaults from --cluster-config; flags win)")
    group.add_argument(
        "--cluster-config",
        dest="launch_cluster_config",
        metavar="YAML",
        help="cluster defaults, e.g. configs/cluster/example.yaml",
    )
    for flag, (key, kind, text) in CLUSTER_FLAGS.items():
        extra: dict[str, Any] = {"choices": ("slurm", "local")} if key == "cluster" else {}
        if key == "cluster":
            extra["metavar"] = "{slurm,local}"
        group.add_argument(
            flag,
            dest=f"launch_{key}",
            type=kind,
            default=None,
            help=text,
            **{"metavar": METAVARS.get(key, key.split("_")[0].upper()), **extra},
        )
    group.add_argument(
        "--cluster-set",
        dest="launch_cluster_set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other cluster key, e.g. sbatch.mail-user=me@x (repeatable)",
    )
    group.add_argument(
        "--run-dir",
        dest="launch_run_dir",
        metavar="DIR",
        help="where jobs.json, submitit logs and outputs go",
    )
    group.add_argument(
        "--wait",
        dest="launch_wait",
        action="store_true",
        help="block until the jobs end and print their results",
    )
    group.add_argument(
        "--dry-run",
        dest="launch_dry_run",
        action="store_true",
        help="print the sbatch script that would be submitted, submit nothing",
    )
    if array:
        group.add_argument(
            "--array",
            dest="launch_array",
            type=int,
            default=1,
            metavar="N",
            help="split the build into N array tasks, then merge (default 1)",
        )


def _data_commands() -> dict[str, str]:
    from coir.pipeline.cli import _registered

    return {
        words[1]: target for words, target in _registered().items() if len(words) == 2 and words[0] == "data"
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", dest="launch_command")
    fmt = argparse.RawDescriptionHelpFormatter

    train = sub.add_parser(
        "train",
        help="pretraining / finetuning as one multi-task job (one rank per GPU)",
        formatter_class=fmt,
        epilog="example:\n  " + EXAMPLE.splitlines()[0],
    )
    importlib.import_module("coir.pipeline.train_cli").add_arguments(train)
    _add_cluster_flags(train)

    evaluate = sub.add_parser(
        "eval",
        help="evaluate checkpoints x benchmarks as an array; one results table",
        formatter_class=fmt,
        description="Every `coir eval` option is accepted (flags and KEY=VALUE overrides of the same "
        "EvalConfig) and reaches each task; checkpoint, model_name, out and results are set per task, "
        "and an unset device is cuda when the tasks get GPUs, else cpu.",
        epilog="examples:\n  " + "\n  ".join(EXAMPLE.splitlines()[3:7]),
    )
    evaluate.add_argument(
        "--checkpoints",
        "--checkpoint",
        dest="checkpoints",
        action="append",
        required=True,
        metavar="GLOB",
        help="exported model directories (a glob; repeatable)",
    )
    evaluate.add_argument(
        "--benchmarks",
        "--benchmark",
        dest="benchmarks",
        default=None,
        help="comma-separated, e.g. cirr,fashioniq,lasco (default: the config's benchmark)",
    )
    evaluate.add_argument(
        "--data-root",
        action="append",
        default=[],
        metavar="DIR|NAME=DIR",
        help="benchmark root, or a folder holding cirr/ fashioniq/ ...; repeatable (default: the config's)",
    )
    evaluate.add_argument(
        "--image-root",
        action="append",
        default=[],
        metavar="DIR|NAME=DIR",
        help="where the images are when not under the data root (real CIRR: img_raw); repeatable",
    )
    from coir.eval.flags import add_eval_arguments

    add_eval_arguments(evaluate, exclude=SET_PER_TASK + PER_BENCHMARK)
    _add_cluster_flags(evaluate)

    data = sub.add_parser("data", help="a `coir data` command as a job (lasco: an array of shard ranges)")
    data_sub = data.add_subparsers(title="commands", metavar="COMMAND", dest="launch_data")
    for name, target in sorted(_data_commands().items()):
        module = importlib.import_module(target)
        command = data_sub.add_parser(name, help=getattr(module, "HELP", ""), formatter_class=fmt)
        module.add_arguments(command)
        _add_cluster_flags(command, array=name == "lasco")

    selftest = sub.add_parser(
        "selftest",
        help="check a cluster set-up: ranks, rendezvous, USR2 and requeue "
        "with a stand-in trainer (no data, no model)",
        formatter_class=fmt,
    )
    selftest.add_argument("--steps", type=int, default=20, help="steps to count (default 20)")
    selftest.add_argument("--step-seconds", type=float, default=1.0, help="seconds per step (default 1)")
    _add_cluster_flags(selftest)

    for name, text in (
        ("status", "state of the jobs of a run directory"),
        ("logs", "paths and last lines of the jobs' logs"),
        ("cancel", "cancel the jobs of a run directory"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("run_dir", metavar="RUN_DIR")
        if name != "status":
            command.add_argument("--job", metavar="ID|KIND", help="only this job id or kind (e.g. train)")
        if name == "logs":
            command.add_argument("--task", type=int, default=None, help="only this task (rank)")
            command.add_argument("--lines", "-n", type=int, default=20, help="last lines shown (0: all)")
            command.add_argument("--err", action="store_true", help="stderr instead of stdout")


# -- run ----------------------------------------------------------------------------------------
def cluster_from_args(args: argparse.Namespace) -> Any:
    from coir.launch.cluster_config import load_cluster_config

    values = {key: getattr(args, f"launch_{key}") for key, _, _ in CLUSTER_FLAGS.values()}
    return load_cluster_config(args.launch_cluster_config, args.launch_cluster_set, **values)


def _command_args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if not k.startswith(("launch_", "_"))}


def _run_dir(args: argparse.Namespace, default: str) -> Path:
    return Path(args.launch_run_dir or default)


def _finish(args: argparse.Namespace, submission: Any) -> int:
    print(submission.describe())
    if args.launch_wait:
        import json

        for record, result in zip(submission.records, submission.wait(), strict=True):
            print(f"{record.kind} {record.job_id}: {json.dumps(result, default=str)[:2000]}")
    return 0


def _dry_run(cluster: Any, run_dir: Path, kind: str, array: int | None = None) -> int:
    from coir.launch.executor import render_sbatch

    array = array if array and array > 1 else None  # submitit submits a single job as a plain job
    print(render_sbatch(cluster, run_dir.resolve() / "submitit", f"coir-{kind}", array=array))
    return 0


def run(args: argparse.Namespace) -> int:
    from coir.common.errors import ConfigError

    command = args.launch_command
    if command is None:
        raise ConfigError("coir launch needs a command: train, eval, data, status, logs or cancel")
    if command in ("status", "logs", "cancel"):
        return _manage(args)
    cluster = cluster_from_args(args)
    from coir.launch import api

    if command == "train":
        overrides = list(args.overrides)
        if args.resume is not None:
            overrides.append(f"checkpoint.resume={args.resume}")
        if args.launch_dry_run:
            return _dry_run(cluster, _run_dir(args, "runs/train"), "train")
        return _finish(args, api.submit_train(args.config, overrides, cluster, args.launch_run_dir))
    if command == "eval":
        return _eval(args, cluster)
    if command == "selftest":
        run_dir = _run_dir(args, "runs/selftest")
        if args.launch_dry_run:
            return _dry_run(cluster, run_dir, "selftest")
        return _finish(args, api.submit_selftest(args.steps, args.step_seconds, cluster, run_dir))
    if command == "data":
        if args.launch_data is None:
            raise ConfigError("coir launch data needs a command: " + ", ".join(sorted(_data_commands())))
        run_dir = _run_dir(args, f"runs/{args.launch_data}-build")
        if args.launch_data == "lasco" and not args.finalize:
            if args.launch_dry_run:
                return _dry_run(cluster, run_dir, "lasco", array=args.launch_array)
            return _finish(args, api.submit_lasco(_command_args(args), cluster, run_dir, args.launch_array))
        if args.launch_dry_run:
            return _dry_run(cluster, run_dir, f"data-{args.launch_data}")
        return _finish(
            args, api.submit_command(["data", args.launch_data], _command_args(args), cluster, run_dir)
        )
    raise ConfigError(f"unknown launch command {command!r}")


def _eval(args: argparse.Namespace, cluster: Any) -> int:
    """The sweep's EvalConfig from the same flags and overrides as `coir eval`; then one task a cell."""
    from coir.common.errors import ConfigError
    from coir.eval.benchmarks import get_benchmark
    from coir.eval.flags import eval_config_from_args
    from coir.launch import api

    for item in args.overrides:
        key = item.partition("=")[0].strip()
        if key in SET_PER_TASK:
            raise ConfigError(
                f"override {item!r}: coir launch eval sets {key!r} for each task "
                "(--checkpoints; model names from the paths; RUN_DIR/eval/<model>/<benchmark>)"
            )
    named = [b.strip() for b in (args.benchmarks or "").split(",") if b.strip()]
    config = eval_config_from_args(args, benchmarks=named or None)
    benchmarks = named or ([config.benchmark] if config.benchmark else [])
    if not benchmarks:
        raise ConfigError(
            "coir launch eval: give --benchmarks (e.g. cirr,fashioniq) or benchmark= in --config"
        )
    for benchmark in benchmarks:
        get_benchmark(benchmark)
    checkpoints = sorted({p for pattern in args.checkpoints for p in (glob.glob(pattern) or [pattern])})
    run_dir = _run_dir(args, "runs/eval")
    if args.launch_dry_run:
        return _dry_run(cluster, run_dir, "eval", array=len(checkpoints) * len(benchmarks))
    data = args.data_root or ([config.data_root] if config.data_root else [])
    images = args.image_root or ([config.image_root] if config.image_root else [])
    roots = api.data_roots(data, benchmarks)
    return _finish(
        args,
        api.submit_eval(
            checkpoints, benchmarks, config, roots, cluster, run_dir, api.image_roots(images, benchmarks)
        ),
    )


def _manage(args: argparse.Namespace) -> int:
    from coir.launch import runs

    records = runs.read_jobs(args.run_dir)
    if args.launch_command == "status":
        print(runs.format_status(runs.run_status(args.run_dir)))
        return 0
    chosen = runs.select(records, args.job)
    if args.launch_command == "cancel":
        cancelled = runs.cancel(chosen)
        print(f"cancelled: {' '.join(cancelled) or '(nothing running)'}")
        return 0
    for record in chosen:
        for task, out, err in runs.log_paths(record, args.task):
            path = err if args.err else out
            print(f"==> {record.kind} {record.job_id} task {task}: {path}")
            print(runs.tail(path, args.lines))
    sys.stdout.flush()
    return 0

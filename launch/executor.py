"""submitit executors from a ClusterConfig: SLURM (sbatch through submitit) or local processes.

One task per GPU: `ntasks_per_node = gpus_per_node` (or `tasks_per_node` when set), each task one
rank of the job. The sbatch script asks for `--signal=USR2@<signal_delay_s>` so that a job about to
hit its time limit gets SIGUSR2 in every task and the trainer checkpoints (see task.py), and for
`--requeue` so that SLURM may requeue it after a preemption. Its srun runs with `--kill-on-bad-exit=1`:
a task that fails (an error, the hang watchdog of pipeline/watchdog.py) ends the others at once.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from coir.launch.cluster_config import ClusterConfig


def slurm_parameters(config: ClusterConfig, job_name: str) -> dict[str, Any]:
    """The keyword arguments of submitit's SlurmExecutor.update_parameters for this request."""
    params: dict[str, Any] = {
        "job_name": config.job_name or job_name,
        "time": config.timeout_min,
        "nodes": config.nodes,
        "ntasks_per_node": config.ntasks_per_node,
        "signal_delay_s": config.signal_delay_s,
        "array_parallelism": config.array_parallelism,
        "additional_parameters": {"requeue": True, **config.sbatch},
    }
    optional = {
        "partition": config.partition,
        "account": config.account,
        "qos": config.qos,
        "constraint": config.constraint,
        "exclude": config.exclude,
        "cpus_per_task": config.cpus_per_task,
        "gpus_per_node": config.gpus_per_node or None,
        "mem": _mem(config.mem_gb),
        "setup": list(config.setup) or None,
        # a task that fails (an error, the hang watchdog) ends the job's other tasks at once instead of
        # leaving them in a collective until the time limit
        "srun_args": ["--kill-on-bad-exit=1", *config.srun_args],
    }
    params.update({key: value for key, value in optional.items() if value is not None})
    return params


def _mem(mem_gb: float | None) -> str | None:
    if mem_gb is None:
        return None
    return f"{int(mem_gb)}GB" if mem_gb == int(mem_gb) else f"{int(mem_gb * 1024)}MB"


def python_command(config: ClusterConfig) -> str:
    return config.python or shlex.quote(sys.executable)


def render_sbatch(
    config: ClusterConfig, folder: str | Path, job_name: str = "coir", array: int | None = None
) -> str:
    """The sbatch script submitit would submit for this request (no cluster needed)."""
    from submitit.slurm.slurm import _make_sbatch_string

    command = f"{python_command(config)} -u -m submitit.core._submit {shlex.quote(str(folder))}"
    params = slurm_parameters(config, job_name)
    if array is not None:
        params["map_count"] = array
    return _make_sbatch_string(command=command, folder=folder, **params)


def make_executor(config: ClusterConfig, folder: str | Path, job_name: str) -> Any:
    """A submitit executor for `config.cluster`, writing its pickles and logs under `folder`."""
    import submitit

    folder = Path(folder)
    if config.cluster == "slurm":
        executor = submitit.SlurmExecutor(
            folder=folder, max_num_timeout=config.max_requeues, python=config.python
        )
        executor.update_parameters(**slurm_parameters(config, job_name))
        return executor
    executor = submitit.LocalExecutor(folder=folder, max_num_timeout=config.max_requeues)
    params: dict[str, Any] = {
        "timeout_min": config.timeout_min,
        "tasks_per_node": config.ntasks_per_node,
        "gpus_per_node": config.gpus_per_node,
        "signal_delay_s": config.signal_delay_s,
    }
    if config.setup:
        params["setup"] = list(config.setup)
    executor.update_parameters(**params)
    return executor

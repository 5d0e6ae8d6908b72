"""Cluster defaults (`configs/cluster/*.yaml`) and the resources of one launch.

A cluster file holds what a user sets once (partition, account, qos, constraint, signal delay,
setup lines); the `coir launch` flags override it for one submission. Both go through
coir.common.config.load_config, so an unknown key or a wrong type names the key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coir.common.config import load_config
from coir.common.errors import ConfigError


@dataclass
class ClusterConfig:
    cluster: str = "slurm"  # slurm | local (local: the tasks run as processes on this machine)
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None  # e.g. "a100|h100"
    exclude: str | None = None  # nodes to avoid, e.g. "node[001-003]"
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int | None = None  # default: one task per GPU (1 when gpus_per_node is 0)
    cpus_per_task: int | None = None
    mem_gb: float | None = None  # per node
    time: str = "01:00:00"  # [D-]HH:MM:SS or minutes
    signal_delay_s: int = 120  # SIGUSR2 this long before the time limit: the trainer checkpoints
    max_requeues: int = 3  # after a preemption or time limit; then the job ends as failed
    array_parallelism: int = 64  # array tasks running at once
    job_name: str | None = None  # default: coir-<kind>
    python: str | None = None  # interpreter on the nodes (default: this one)
    setup: list[str] = field(default_factory=list)  # shell lines before srun (module load, env vars)
    srun_args: list[str] = field(default_factory=list)
    sbatch: dict[str, str] = field(default_factory=dict)  # any further #SBATCH flag, e.g. mail-user

    @property
    def ntasks_per_node(self) -> int:
        if self.tasks_per_node is not None:
            return self.tasks_per_node
        return self.gpus_per_node if self.gpus_per_node > 0 else 1

    @property
    def num_tasks(self) -> int:
        return self.nodes * self.ntasks_per_node

    @property
    def timeout_min(self) -> int:
        return parse_time(self.time)


_TIME = re.compile(r"^(?:(?P<days>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")


def parse_time(text: str | int) -> int:
    """SLURM time formats to whole minutes (rounded up): MM, HH:MM:SS, D-HH[:MM[:SS]], MM:SS."""
    text = str(text).strip()
    match = _TIME.match(text)
    if not match:
        raise ConfigError(f"key 'time': {text!r} is not a SLURM time ([D-]HH:MM:SS or minutes)")
    days = int(match["days"] or 0)
    parts = [int(p) for p in (match["a"], match["b"], match["c"]) if p is not None]
    if match["days"]:  # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    elif len(parts) == 2:  # MM:SS
        hours, minutes, seconds = 0, parts[0], parts[1]
    else:
        hours, minutes, seconds = 0, parts[0], 0
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ConfigError(f"key 'time': {text!r} must be positive")
    return math.ceil(total / 60)


def check(config: ClusterConfig) -> ClusterConfig:
    if config.cluster not in ("slurm", "local"):
        raise ConfigError(f"key 'cluster': {config.cluster!r} is not one of slurm, local")
    for name in ("nodes", "max_requeues", "array_parallelism", "signal_delay_s", "gpus_per_node"):
        value = getattr(config, name)
        if value < (1 if name in ("nodes", "array_parallelism") else 0):
            raise ConfigError(f"key {name!r}: {value} is out of range")
    if config.ntasks_per_node < 1:
        raise ConfigError(f"key 'tasks_per_node': {config.ntasks_per_node} must be at least 1")
    if config.cluster == "local" and config.nodes != 1:
        raise ConfigError("key 'nodes': the local cluster has one node")
    parse_time(config.time)
    return config


def load_cluster_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), **values: Any
) -> ClusterConfig:
    """The cluster file (if any), then `key=value` overrides, then explicit values (None = unset)."""
    dotlist = list(overrides)
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, str):
            value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        dotlist.append(f"{key}={value}")
    return check(load_config(ClusterConfig, path, dotlist))

"""The torch.distributed variables of one task, from the submitit/SLURM job environment.

Every task of a launched job calls `export_torch_env` before the trainer starts: MASTER_ADDR,
MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE come from
submitit.helpers.TorchDistributedEnvironment (the port is derived from the job id, so every task of
the job, and the job again after a requeue, agree on it).

CUDA_VISIBLE_DEVICES: submitit's helper would pin it to the local rank. We do not: like torchrun and
the deepspeed launcher, every task of a node sees the node's GPUs and DeepSpeed (and the trainer)
pick `cuda:<LOCAL_RANK>`; a task pinned to one device would look for cuda:3 among one GPU. On a
CPU-only node there is nothing to pin at all. `gpu_problem` reports the one layout that cannot work
(fewer visible devices than tasks on the node, e.g. after `srun --gpus-per-task=1` binding).
"""

from __future__ import annotations

import logging
import os

LOGGER = logging.getLogger(__name__)


def gpu_problem(
    visible: str | None, local_rank: int, local_world_size: int, gpus_per_node: int
) -> str | None:
    """Why `cuda:<local_rank>` would not exist for this task, or None when it will (or no GPU is used)."""
    if gpus_per_node <= 0 or visible is None:
        return None  # CPU job, or no restriction: the node's GPUs are all visible
    devices = [d for d in visible.split(",") if d.strip()]
    if local_rank < len(devices):
        return None
    return (
        f"CUDA_VISIBLE_DEVICES={visible!r} shows {len(devices)} device(s) to local rank {local_rank} of "
        f"{local_world_size}: give every task of a node all its GPUs (no per-task GPU binding)"
    )


def export_torch_env(gpus_per_node: int) -> dict[str, str]:
    """Export the distributed variables of this task (overwriting any); returns what was set."""
    from submitit.helpers import TorchDistributedEnvironment

    dist_env = TorchDistributedEnvironment()
    # one node: the loopback address works even where the node's own name does not resolve
    master = dist_env.master_addr if dist_env._job_env.num_nodes > 1 else "127.0.0.1"
    values = {
        "MASTER_ADDR": master,
        "MASTER_PORT": str(dist_env.master_port),
        "RANK": str(dist_env.rank),
        "WORLD_SIZE": str(dist_env.world_size),
        "LOCAL_RANK": str(dist_env.local_rank),
        "LOCAL_WORLD_SIZE": str(dist_env.local_world_size),
    }
    os.environ.update(values)
    problem = gpu_problem(
        os.environ.get("CUDA_VISIBLE_DEVICES"), dist_env.local_rank, dist_env.local_world_size, gpus_per_node
    )
    if problem:
        LOGGER.warning(problem)
    return values

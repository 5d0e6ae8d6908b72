"""The torch.distributed variables of one task, from the submitit/SLURM job environment.

Every task of a launched job calls `export_torch_env` before the trainer starts: MASTER_ADDR,
RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE come from
submitit.helpers.TorchDistributedEnvironment; MASTER_PORT is a port rank 0 found free on its node and
shared through the job's folder (rendezvous.py), not submitit's job-id-derived one, which another
process on the node may hold.

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


def export_torch_env(gpus_per_node: int, requeues: int = 0) -> dict[str, str]:
    """Export the distributed variables of this task (overwriting any); returns what was set.
    `requeues` (the launched task's requeue count) names the attempt whose master port is agreed on."""
    from submitit.helpers import TorchDistributedEnvironment

    from coir.launch.rendezvous import agree_on_port, port_file

    os.environ.pop("MASTER_PORT", None)  # an inherited one would be taken as every attempt's port
    dist_env = TorchDistributedEnvironment()
    job = dist_env._job_env
    port = agree_on_port(port_file(job.paths.folder, job.job_id, requeues), dist_env.rank)
    # one node: the loopback address works even where the node's own name does not resolve
    master = dist_env.master_addr if job.num_nodes > 1 else "127.0.0.1"
    values = {
        "MASTER_ADDR": master,
        "MASTER_PORT": str(port),
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

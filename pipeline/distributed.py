"""Rank, world size and master address from the environment, and process-group set-up.

Sources, first match wins:
  1. RANK + WORLD_SIZE (torchrun, the deepspeed launcher, or a launcher that set them);
  2. a submitit job (SUBMITIT_EXECUTOR set): submitit.JobEnvironment();
  3. a SLURM job step started by srun (SLURM_STEP_ID + SLURM_PROCID): SLURM_PROCID, SLURM_STEP_NUM_TASKS
     (or SLURM_NTASKS), SLURM_LOCALID, master = first host of SLURM_STEP_NODELIST/SLURM_NODELIST;
  4. nothing: one process (rank 0 of 1) on 127.0.0.1 with a free port.
`setup_environment` writes the result back as RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT so that
DeepSpeed's own init (and webdataset's worker info) see the same values.

`process_group(...)` is the one set-up of every path that runs with several ranks (the trainer, `coir
eval` under torchrun or SLURM, the jobs of `coir launch eval`): ranks, the GPU of this rank, the
process group with an explicit collective timeout (NCCL and gloo alike), torn down on exit.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

_control = None  # a gloo process group for control messages when the main backend is nccl
# a collective that waits longer fails (torch's own gloo default); it must exceed the longest phase in
# which one rank works alone while the others wait (a validation or checkpoint write on rank 0)
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    source: str  # env | submitit | slurm | single


def free_port() -> int:
    """A TCP port nobody on this host listens on (any interface), as the OS hands them out."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _slurm_port() -> int:
    job = os.environ.get("SLURM_JOB_ID", "0")
    return 20000 + int(job) % 20000 if job.isdigit() else 29500


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: `scontrol show hostnames`, or parsed when scontrol is absent."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.split()
        if out:
            return out[0]
    except (OSError, subprocess.SubprocessError):
        pass
    head = re.split(r",(?![^\[]*\])", nodelist.strip())[0]  # first entry, commas inside [] kept
    match = re.match(r"([^\[]*)\[([^\],-]+)", head)
    return match.group(1) + match.group(2) if match else head


def detect() -> DistEnv:
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistEnv(
            rank=int(env["RANK"]),
            world_size=int(env["WORLD_SIZE"]),
            local_rank=int(env.get("LOCAL_RANK", env["RANK"])),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(env.get("MASTER_PORT", "29500")),
            source="env",
        )
    if "SUBMITIT_EXECUTOR" in env:
        import submitit

        job = submitit.JobEnvironment()
        return DistEnv(
            rank=job.global_rank,
            world_size=job.num_tasks,
            local_rank=job.local_rank,
            master_addr=job.hostnames[0] if job.num_nodes > 1 else "127.0.0.1",
            master_port=int(env.get("MASTER_PORT", _slurm_port())),
            source="submitit",
        )
    if "SLURM_STEP_ID" in env and "SLURM_PROCID" in env:
        world = int(env.get("SLURM_STEP_NUM_TASKS", env.get("SLURM_NTASKS", "1")))
        nodelist = env.get("SLURM_STEP_NODELIST", env.get("SLURM_NODELIST", "127.0.0.1"))
        return DistEnv(
            rank=int(env["SLURM_PROCID"]),
            world_size=world,
            local_rank=int(env.get("SLURM_LOCALID", "0")),
            master_addr=env.get("MASTER_ADDR", first_host(nodelist)),
            master_port=int(env.get("MASTER_PORT", _slurm_port())),
            source="slurm",
        )
    return DistEnv(0, 1, 0, "127.0.0.1", int(env.get("MASTER_PORT", free_port())), "single")


def setup_environment() -> DistEnv:
    """Detect the ranks and export them in the variables torch.distributed reads."""
    dist_env = detect()
    os.environ.update(
        RANK=str(dist_env.rank),
        WORLD_SIZE=str(dist_env.world_size),
        LOCAL_RANK=str(dist_env.local_rank),
        MASTER_ADDR=dist_env.master_addr,
        MASTER_PORT=str(dist_env.master_port),
    )
    return dist_env


def init_process_group(dist_env: DistEnv, use_cuda: bool, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Start the default process group (nccl on GPU, gloo on CPU) through DeepSpeed's helper; every
    collective of it (and of the gloo control group) fails after `timeout_s` seconds of waiting."""
    import deepspeed
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if not use_cuda:
        _no_shm_comm_op()
    timeout = datetime.timedelta(seconds=timeout_s)
    deepspeed.init_distributed(
        dist_backend="nccl" if use_cuda else "gloo",
        auto_mpi_discovery=False,
        verbose=False,
        timeout=timeout,
        rank=dist_env.rank,
        world_size=dist_env.world_size,
    )
    global _control
    # small control messages (the stop flag every step) go through gloo on the CPU so that they
    # never force a GPU synchronisation
    multi = use_cuda and dist_env.world_size > 1
    _control = dist.new_group(backend="gloo", timeout=timeout) if multi else None


@contextlib.contextmanager
def process_group(use_cuda: bool, timeout_s: float, single: bool = True) -> Iterator[DistEnv]:
    """Ranks from the environment, this rank's GPU (cuda:<local rank>) and the process group; the group
    is destroyed on exit when it was started here. `single=False`: no group for a world of one."""
    import torch

    dist_env = setup_environment()
    if use_cuda:
        # submitit/SLURM may leave each task a single visible GPU whatever its local rank
        torch.cuda.set_device(dist_env.local_rank % torch.cuda.device_count())
    created = not torch.distributed.is_initialized() and (single or dist_env.world_size > 1)
    if created:
        init_process_group(dist_env, use_cuda, timeout_s)
    try:
        yield dist_env
    finally:
        if created:
            shutdown()


def _no_shm_comm_op() -> None:
    """Keep DeepSpeed from JIT-compiling its shared-memory CPU all-reduce op (minutes of C++ build on a
    fresh machine): its TorchBackend only builds the op when deepspeed.ops.__compatible_ops__ lists it,
    a dict cached in that module (editing it is the documented way to keep edits), so mark it off."""
    import deepspeed.ops

    namespace = vars(deepspeed.ops)
    namespace.setdefault("__compatible_ops__", {})["deepspeed_shm_comm"] = False


def all_agree(flag: bool) -> bool:
    """True on every rank when any rank passes True (used for signals)."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return flag
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int32)
    if _control is None and dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=_control)
    return bool(tensor.item())


def shutdown() -> None:
    """Destroy the process groups this module started."""
    import torch.distributed as dist

    global _control
    _control = None
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def all_reduce_sum(values: list[float]) -> list[float]:
    import torch
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return list(values)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_reduce_max(values: list[float]) -> list[float]:
    import torch
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return list(values)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()

"""A temporary one-node SLURM on 127.0.0.1 for the integration tests (see slurm.py)."""

from coir.launch.testbed.slurm import SlurmStartFailed, SlurmTestbed, SlurmUnavailable, reap_orphans

__all__ = ["SlurmStartFailed", "SlurmTestbed", "SlurmUnavailable", "reap_orphans"]

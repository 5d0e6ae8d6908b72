"""One evaluation rank: joins the process group when the run has several ranks (torchrun, SLURM, the
tasks of `coir launch eval`), through the same set-up as the trainer (coir.pipeline.distributed).

    with eval_ranks(config) as config:     # config.device: this rank's device (cuda:<local rank>)
        evaluation = evaluate(config.checkpoint, config)

Inside the block each rank embeds its slice of the gallery and of the queries (coir.eval.encode) and
only rank 0 writes results, reports, the gallery cache and the model card.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

from coir.eval.config import EvalConfig, eval_device


@contextlib.contextmanager
def eval_ranks(config: EvalConfig) -> Iterator[EvalConfig]:
    from coir.pipeline.distributed import process_group

    device = eval_device(config)
    use_cuda = device.startswith("cuda")
    with process_group(use_cuda, config.collective_timeout_s, single=False) as dist_env:
        if device == "cuda" and dist_env.world_size > 1:
            import torch

            device = f"cuda:{torch.cuda.current_device()}"
        yield replace(config, device=device)

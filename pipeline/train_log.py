"""Training logs: JSON lines (<log dir>/train.jsonl), TensorBoard and a rank-0 progress bar.

Every `logging.every_steps` optimizer steps rank 0 appends one record:
  {"step", "epoch", "samples_seen", "loss", <other loss terms>, "lr", "samples_per_s",
   "data_wait_share", "flops_per_sample", "achieved_tflops", "mfu", "peak_host_memory_gib",
   "peak_device_memory_gib", "skipped_samples", "time"}
samples_per_s and data_wait_share cover the steps since the previous record, over all ranks;
achieved_tflops is per device, mfu against logging.peak_tflops or the detected GPU's peak (absent when
neither is known, e.g. on CPU), the memory fields the largest peak over ranks so far (device: CUDA only)
(pipeline/throughput.py).
Other ranks write nothing here, except data_rank<r>.jsonl with the keys and shards they read when
logging.log_samples is set.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class TrainLogger:
    def __init__(
        self,
        log_dir: Path,
        rank: int,
        tensorboard: bool,
        progress_bar: bool,
        total_steps: int,
        start_step: int,
        log_samples: bool = False,
    ) -> None:
        self.rank = rank
        self.is_main = rank == 0
        log_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = (log_dir / "train.jsonl").open("a") if self.is_main else None
        self.samples_file = (log_dir / f"data_rank{rank}.jsonl").open("a") if log_samples else None
        self.writer = None
        if self.is_main and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir / "tensorboard"))
        self.bar = None
        if self.is_main and progress_bar:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True
            )

    def samples(self, step: int, keys: list[str], shards: list[str]) -> None:
        if self.samples_file is not None:
            record = {"rank": self.rank, "step": step, "keys": keys, "shards": sorted(set(shards))}
            self.samples_file.write(json.dumps(record) + "\n")

    def step(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def postfix(self, record: dict[str, Any]) -> None:
        """Show the latest logged loss, global samples/s and data-wait share on the bar."""
        if self.bar is not None:
            shown = {
                "loss": f"{record['loss']:.4f}",
                "sps": f"{record['samples_per_s']:.1f}",
                "wait": f"{100 * record['data_wait_share']:.0f}%",
            }
            if "mfu" in record:
                shown["mfu"] = f"{100 * record['mfu']:.1f}%"
            self.bar.set_postfix(shown)

    def record(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        record = {**record, "time": time.time()}
        assert self.jsonl is not None
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        if self.writer is not None:
            step = int(record["step"])
            for key, value in record.items():
                if key not in ("step", "time") and isinstance(value, int | float):
                    self.writer.add_scalar(f"train/{key}", value, step)
            self.writer.flush()

    def message(self, text: str) -> None:
        if not self.is_main:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        for handle in (self.jsonl, self.samples_file):
            if handle is not None:
                handle.close()
        if self.writer is not None:
            self.writer.close()
        if self.bar is not None:
            self.bar.close()

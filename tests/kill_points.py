"""Run a coir writer and SIGKILL it at a chosen point of a save (what `kill -9` does to a job).

The points are the file operations a save is made of, counted once the save starts: each os.replace
(an atomic write taking its name), each torch.save to a path (DeepSpeed's checkpoint files; the killed
one is left half-written) and each shutil.rmtree (pruning). `--kill-at N` kills the process at the N-th.

    python kill_points.py export TOKENIZER OUT SEED --kill-at N     # save_export of a tiny CASE
    python kill_points.py train STEP --kill-at N RECIPE [ARGS ...]  # coir train; armed in the save of STEP
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import sys


class KillAt:
    """Counts the file operations while armed; SIGKILLs the process at the `at`-th."""

    def __init__(self, at: int) -> None:
        self.at, self.count, self.armed = at, 0, False

    def reached(self) -> bool:
        if not self.armed:
            return False
        self.count += 1
        return self.count == self.at

    def install(self) -> None:
        import torch

        real_replace, real_rmtree, real_save = os.replace, shutil.rmtree, torch.save

        def replace(src, dst, *args, **kwargs):
            if self.reached():
                os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(src, dst, *args, **kwargs)

        def rmtree(path, *args, **kwargs):
            if self.reached():
                os.kill(os.getpid(), signal.SIGKILL)
            return real_rmtree(path, *args, **kwargs)

        def save(obj, f, *args, **kwargs):
            if isinstance(f, str | os.PathLike) and self.reached():
                buffer = io.BytesIO()
                real_save(obj, buffer, *args, **kwargs)
                with open(f, "wb") as handle:  # half of the file, as a kill mid-write leaves it
                    handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, f, *args, **kwargs)

        os.replace, shutil.rmtree, torch.save = replace, rmtree, save


def export(tokenizer: str, out: str, seed: int, kill: KillAt) -> None:
    import torch

    from coir.pipeline.models.blip.config import BlipModelConfig
    from coir.pipeline.models.export import save_export
    from coir.pipeline.models.registry import build_model

    torch.manual_seed(seed)
    model = build_model(BlipModelConfig(tokenizer=tokenizer, preset="tiny", image_size=32)).eval()
    card = {"kind": "export", "model_name": f"seed-{seed}"}
    kill.armed = True
    save_export(model, out, card=card)


def train(step: int, argv: list[str], kill: KillAt) -> int:
    from coir.pipeline import checkpoint
    from coir.pipeline.train_cli import main

    real_save = checkpoint.save

    def save(engine, directory, at_step, *args, **kwargs):
        kill.armed = at_step == step
        return real_save(engine, directory, at_step, *args, **kwargs)

    checkpoint.save = save
    return main(argv)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("export", "train"))
    parser.add_argument("--kill-at", type=int, default=0, help="0: never")
    args, rest = parser.parse_known_args()
    kill = KillAt(args.kill_at)
    kill.install()
    if args.what == "export":
        tokenizer, out, seed = rest
        export(tokenizer, out, int(seed), kill)
        return 0
    return train(int(rest[0]), rest[1:], kill)


if __name__ == "__main__":
    sys.exit(main())

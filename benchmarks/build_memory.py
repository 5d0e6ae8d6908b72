"""Peak host memory (RSS) of building a BLIP-base CASE whose weights then come from a checkpoint.

Every rank of a node builds its own model, so a random full copy made only to be overwritten costs
eight copies per node. Each measurement runs in a fresh subprocess and reports its
resource.getrusage(RUSAGE_SELF).ru_maxrss:

- `import`: the imports alone (the floor every mode shares);
- `random`: one randomly initialised BLIP-base (the size of one copy);
- `pretrained`: model.pretrained = a Hugging Face BlipForImageTextRetrieval folder (the coir path);
- `export/random-first`: model.init_from = a coir export as coir built it before: rebuilt with random
  weights that the saved ones then overwrite, and its parts deep-copied into the new model;
- `export`: the same with coir's path now (rebuilt with accelerate.init_empty_weights, the saved
  weights assigned in place of the empty ones, the parts moved over without a copy).

The checkpoints are random BLIP-base weights written to a temporary folder first (CPU only).

    PYTHONPATH=... python benchmarks/build_memory.py [--preset base] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("import", "random", "pretrained", "export/random-first", "export")
# Linux keeps ru_maxrss across fork + exec: a child reports at least its parent's RSS at the fork, so the
# parent (this script's main) never imports torch and the checkpoints are made in a child as well


def _imports() -> None:
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from coir.pipeline.models.blip import build  # noqa: F401


def make_checkpoints(folder: Path, preset: str) -> None:
    import torch

    from coir.pipeline.models.blip.config import BlipModelConfig
    from coir.pipeline.models.blip.parts import preset_config
    from coir.pipeline.models.blip.tokenizer import train_wordpiece
    from coir.pipeline.models.export import save_export
    from coir.pipeline.models.registry import build_model

    torch.manual_seed(0)
    from transformers import BlipForImageTextRetrieval

    hf = folder / "hf"
    tok = train_wordpiece(["make the circle red", "the square is blue"] * 20, folder / "tok", vocab_size=60)
    BlipForImageTextRetrieval(preset_config(preset, 30524)).save_pretrained(str(hf))
    for name in tok.iterdir():
        (hf / name.name).write_bytes(name.read_bytes())
    save_export(build_model(BlipModelConfig(pretrained=str(hf))), folder / "export")


def measure(mode: str, folder: Path, preset: str) -> int:
    """Build in this process as `mode` says; return the peak RSS in bytes."""
    _imports()
    from coir.pipeline.models.blip.config import BlipModelConfig
    from coir.pipeline.models.registry import build_model

    model = None
    if mode == "random":
        from coir.pipeline.models.blip.parts import BlipParts, preset_config

        model = BlipParts(preset_config(preset, 30524))
    elif mode == "pretrained":
        model = build_model(BlipModelConfig(pretrained=str(folder / "hf")))
    elif mode == "export":
        model = build_model(BlipModelConfig(init_from=str(folder / "export")))
    elif mode == "export/random-first":
        from safetensors.torch import load_file

        from coir.pipeline.models.blip.baselines import copy_parts
        from coir.pipeline.models.blip.build import MODELS, assemble
        from coir.pipeline.models.blip.parts import BlipParts, config_from_dict
        from coir.pipeline.models.blip.tokenizer import load_tokenizer
        from coir.pipeline.models.export import read_meta

        meta = read_meta(folder / "export")
        cfg = BlipModelConfig.from_export(meta["config"]["model"], meta["name"])
        parts = BlipParts(config_from_dict(meta["config"]["blip"]))
        model = assemble(cfg, parts, load_tokenizer(folder / "export" / "tokenizer"))
        model.load_state_dict(load_file(str(folder / "export" / "model.safetensors")), strict=True)
        source = model  # build_from_coir_export then deep-copied the parts of the loaded export
        model = MODELS[cfg.name](cfg, copy_parts(source.parts()), source.tokenizer)
        for p in source.parameters():  # held until the build returned
            float(p.detach().view(-1)[:: max(1, 4096 // p.element_size())].sum())
    if model is not None:
        # read every weight once: weights still backed by the memory-mapped safetensors file only
        # become resident when used, and training uses them all
        for p in model.parameters():
            float(p.detach().view(-1)[:: max(1, 4096 // p.element_size())].sum())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run(mode: str, folder: Path, preset: str) -> int:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", mode, "--keep", str(folder), "--preset", preset],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="base")
    parser.add_argument("--keep", type=Path, help="checkpoint folder to use (made when missing)")
    parser.add_argument("--measure", choices=(*MODES, "make"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure == "make":
        make_checkpoints(args.keep, args.preset)
        print(json.dumps({"peak": 0}))
        return
    if args.measure:
        print(json.dumps({"peak": measure(args.measure, args.keep, args.preset)}))
        return
    with tempfile.TemporaryDirectory(prefix="coir-build-memory-") as tmp:
        folder = args.keep or Path(tmp)
        if not (folder / "export").is_dir():
            run("make", folder, args.preset)
        peaks = {mode: run(mode, folder, args.preset) for mode in MODES}
    print(json.dumps(peaks))
    gib = 2**30
    floor = peaks["import"]
    copy = peaks["random"] - floor
    print(f"preset {args.preset}: one model copy ~ {copy / gib:.2f} GiB (random - import)")
    for mode, peak in peaks.items():
        extra = peak - floor
        share = f"above imports {extra / gib:5.2f} GiB = {extra / copy:.2f} copies"
        print(f"{mode:>20}: peak RSS {peak / gib:6.2f} GiB, {share}")
    before, after = peaks["export/random-first"] - floor, peaks["export"] - floor
    print(f"init_from, above imports: with empty weights / random first = {after / before:.2f}")
    ratio = peaks["export"] / peaks["export/random-first"]
    print(f"init_from, peak RSS: with empty weights / random first = {ratio:.2f}")


if __name__ == "__main__":
    main()

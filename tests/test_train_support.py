"""Helpers for the training tests: tiny triplet shards, a tokenizer, a tiny CASE recipe, launching.

Shards hold coloured shapes: the query is a shape in one colour, the target the same shape in another,
the text says which ("the circle is red"). A few samples can be made corrupt on purpose.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 60, 220),
    "yellow": (230, 220, 30),
    "purple": (140, 40, 180),
    "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle")
REPO = Path(__file__).resolve().parents[1]


def _image(shape: str, colour: str, size: int = 32) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (20, 20, 20))
    draw = ImageDraw.Draw(img)
    box = (6, 6, size - 6, size - 6)
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(size // 2, 6), (6, size - 6), (size - 6, size - 6)], fill=fill)
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def texts() -> list[str]:
    return [f"the {shape} is {colour}" for shape in SHAPES for colour in COLOURS]


def write_shards(
    folder: Path, shards: int = 4, per_shard: int = 24, corrupt: tuple[tuple[int, int], ...] = ()
) -> list[Path]:
    """`shards` tar files of `per_shard` triplets; (shard, index) pairs in `corrupt` get a broken JPEG.
    The folder gets the manifest.json of a finished build (what training checks shards against)."""
    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    colours = list(COLOURS)
    paths = []
    for s in range(shards):
        path = folder / f"triplets-{s:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for i in range(per_shard):
                n = s * per_shard + i
                shape = SHAPES[n % len(SHAPES)]
                source, target = colours[n % len(colours)], colours[(n * 7 + 3) % len(colours)]
                if source == target:
                    target = colours[(colours.index(target) + 1) % len(colours)]
                query = _image(shape, source)
                if (s, i) in corrupt:
                    query = b"\xff\xd8\xff\xe0 this is not a jpeg"
                sink.write(
                    {
                        "__key__": f"s{s:02d}_{i:04d}",
                        "query.jpg": query,
                        "target.jpg": _image(shape, target),
                        "txt": f"the {shape} is {target}",
                        "json": json.dumps({"shard": s, "index": i}),
                    }
                )
        paths.append(path)
    write_manifest(folder, paths, per_shard)
    return paths


def write_manifest(folder: Path, paths: list[Path], per_shard: int) -> Path:
    """A finished build's manifest.json for hand-written triplet shards (the fields training reads)."""
    from coir.datasets.shards.manifest import FORMAT
    from coir.datasets.shards.writer import sha256_file

    entries = [
        {"name": p.name, "samples": per_shard, "bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in paths
    ]
    manifest = {"format": FORMAT, "kind": "triplets", "num_samples": per_shard * len(paths)}
    manifest["shards"] = entries
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder / "manifest.json"


def make_tokenizer(folder: Path) -> Path:
    from coir.pipeline.models.blip.tokenizer import train_wordpiece

    return train_wordpiece(texts() * 3, folder, vocab_size=60)


def make_vocabulary(folder: Path) -> Path:
    from coir.datasets.vocab import Vocabulary

    return Vocabulary.from_captions(texts()).save(folder / "vocabulary.json")


def tiny_artemis(vocabulary: Path, **options: object) -> dict:
    """The model section of a tiny ARTEMIS recipe (ResNet-18 at 32 px, 32-d embeddings)."""
    base = {"family": "artemis", "vocabulary": str(vocabulary), "backbone": "resnet18", "embed_dim": 32}
    return {**base, "word_dim": 16, "image_size": 32, "resize": 32, "max_length": 8, **options}


def write_recipe(
    tmp: Path, shards: Path, tokenizer: Path | None, model: dict | None = None, **overrides: object
) -> Path:
    """A tiny recipe (YAML) for fast CPU runs: CASE with `tokenizer`, or the given model section;
    overrides are dotted keys -> values."""
    from omegaconf import OmegaConf

    base = {
        "run_dir": str(tmp / "run"),
        "seed": 7,
        "model": model or {"preset": "tiny", "tokenizer": str(tokenizer), "image_size": 32, "max_length": 8},
        "data": {
            "shards": [str(shards)],
            "batch_size": 8,
            "num_workers": 1,
            "shuffle_buffer": 16,
            "shuffle_initial": 8,
            "samples_per_epoch_per_worker": 48,
        },
        "optim": {"lr": 1e-3, "warmup_steps": 2, "total_steps": 12, "weight_decay": 0.05, "grad_clip": 1.0},
        "deepspeed": {"zero_stage": 2, "precision": "auto"},
        "checkpoint": {"every_steps": 4, "keep_last": 2},
        "logging": {"every_steps": 1, "tensorboard": False, "progress_bar": False, "log_samples": True},
    }
    conf = OmegaConf.create(base)
    for key, value in overrides.items():
        OmegaConf.update(conf, key, value, merge=True)
    path = tmp / "recipe.yaml"
    path.write_text(OmegaConf.to_yaml(conf))
    return path


def child_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
        and not k.startswith(("SLURM_", "SUBMITIT_"))
    }
    env.update(
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        DS_BUILD_OPS="0",
        DS_SKIP_CUDA_CHECK="1",
    )
    env.update(extra)
    return env


def train_command(recipe: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "coir.pipeline.train_cli", str(recipe), *args]


FAKE_VALIDATOR_SCORES = (0.9, 0.5, 0.7)


def fake_validator(model, data_root: str, split: str, device) -> dict[str, float]:
    """Stands in for a registered validator: scores 0.9, 0.5, 0.7 on its 1st, 2nd, 3rd call."""
    assert not model.training and split == "val" and str(device) == "cpu"
    calls = Path(data_root) / "calls.txt"
    count = len(calls.read_text().splitlines()) if calls.exists() else 0
    with calls.open("a") as handle:
        handle.write("call\n")
    return {"main": FAKE_VALIDATOR_SCORES[count], "R@1": 10.0 * count}


def signalling_validator(model, data_root: str, split: str, device) -> dict[str, float]:
    """A slow stand-in validator during which SIGUSR2 (a preemption notice) arrives; then scores as
    fake_validator does."""
    os.kill(os.getpid(), signal.SIGUSR2)
    time.sleep(0.5)  # the handler has run; validation still goes on for a while
    return fake_validator(model, data_root, split, device)


def train_command_with_fake_validator(
    recipe: Path, *args: str, validator: str = "fake_validator"
) -> list[str]:
    """The trainer CLI with `validator` (a function of this module) standing in for the registered one."""
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_train_support as s; "
        f"import coir.pipeline.engine as e; e.find_validator = lambda config: s.{validator}; "
        "from coir.pipeline.train_cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return [sys.executable, "-c", code, str(recipe), *args]


def launch(
    recipe: Path, world: int, *args: str, port: int, fake_validator: bool | str = False, **env: str
) -> list[subprocess.Popen]:
    """Start `world` trainer processes with RANK/WORLD_SIZE set (what torchrun would do). `fake_validator`:
    True or the name of a validator function of this module. Each process writes its output to a log file
    next to the recipe (`proc.log_path`; nothing to drain); read it with `output(proc)`."""
    if fake_validator:
        name = fake_validator if isinstance(fake_validator, str) else "fake_validator"
        command = train_command_with_fake_validator(recipe, *args, validator=name)
    else:
        command = train_command(recipe, *args)
    launched = next(n for n in itertools.count() if not (recipe.parent / f"launch{n}-rank0.log").exists())
    procs = []
    for rank in range(world):
        log_path = recipe.parent / f"launch{launched}-rank{rank}.log"
        with log_path.open("wb") as log_file:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                command,
                env=child_env(
                    RANK=str(rank),
                    WORLD_SIZE=str(world),
                    LOCAL_RANK=str(rank),
                    MASTER_ADDR="127.0.0.1",
                    MASTER_PORT=str(port),
                    **env,
                ),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=str(REPO),
            )
        proc.log_path = log_path
        procs.append(proc)
    return procs


def output(proc: subprocess.Popen) -> str:
    """Everything a launched process wrote so far (stdout and stderr)."""
    return proc.log_path.read_text(errors="replace")


def tail(proc: subprocess.Popen, chars: int = 3000) -> str:
    return f"--- {proc.log_path.name} (exit {proc.poll()}) ---\n{output(proc)[-chars:]}"


def wait_all(procs: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str]]:
    """Wait for every process; (exit code, output) per process."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            pytest.fail("training processes timed out:\n" + "\n".join(tail(p) for p in procs))
    return [(proc.returncode, output(proc)) for proc in procs]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def export_state(export_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(export_dir / "model.safetensors"))


def test_shards_hold_triplets(tmp_path: Path) -> None:
    import webdataset as wds

    paths = write_shards(tmp_path, shards=1, per_shard=3, corrupt=((0, 1),))
    samples = list(wds.WebDataset(str(paths[0]), shardshuffle=False))
    assert [s["__key__"] for s in samples] == ["s00_0000", "s00_0001", "s00_0002"]
    assert samples[0]["txt"].decode().startswith("the circle is")
    assert not samples[1]["query.jpg"].startswith(samples[0]["query.jpg"][:20])

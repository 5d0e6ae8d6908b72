"""`coir demo --methods all`: every method trained alike on the synthetic fashion-style data, one table.

    world (coir data synth) -> per method: the inputs its recipe needs (a word vocabulary or a WordPiece
    tokenizer of the training captions, ...), the FashionIQ-, Shoes- and Fashion200k-style training
    shards (FashionIQ's captions joined as the method joins them; a zero-shot method that trains on
    single images, Pic2Word, reads their gallery/ folders) -> its untrained initialisation
    exported -> `coir train` of its tiny recipe on the three together, same steps and batch for all ->
    `coir eval` of both on FashionIQ val, Shoes test and Fashion200k test -> one table, untrained ->
    trained, on stdout, <out>/results.md and <out>/results.json

Each method trains from its own shipped tiny recipe (configs/methods/<method>_tiny.yaml; CASE from
configs/pretrain/case_tiny.yaml, from random weights as every other method here), so its learning rate
and architecture are the recipe's; only the steps, batch and image size are the demo's. Finished stages
are reused on a rerun (inputs, shards, trained exports), as in the CASE demo.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coir.common.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
WORD_TEMPLATE = "{c1} <and> {c2}"  # the word-vocabulary families' (ARTEMIS's released code)
PLAIN_TEMPLATE = "{c1} and {c2}"  # coir's default, the CLIP4Cir and CASE convention
CRN_TEMPLATE = "<BOS> {c1} <AND> {c2} <EOS>"  # CRN's released datasets.py
PIC2WORD_TEMPLATE = "{c2} and {c1}"  # Pic2Word's src/data.py


@dataclass(frozen=True)
class DemoMethod:
    name: str  # the row of the table, = the recipe's model name
    recipe: Path
    template: str  # how FashionIQ's two captions become one text, in training and evaluation
    inputs: tuple[tuple[str, str], ...] = ()  # (recipe key, input name in INPUTS)
    size_keys: tuple[str, ...] = ("model.image_size", "model.resize")  # set to --image-size
    # what it trains on (its model's training_samples): the training splits' triplets, or their images
    # (the gallery/ folders of the same builds: a zero-shot method never sees a caption)
    samples: str = "triplets"


def _method(
    name: str,
    template: str,
    *inputs: tuple[str, str],
    recipe: Path | None = None,
    size_keys: tuple[str, ...] = ("model.image_size", "model.resize"),
    samples: str = "triplets",
) -> DemoMethod:
    path = recipe or REPO / "configs" / "methods" / f"{name}_tiny.yaml"
    return DemoMethod(name, path, template, inputs, size_keys, samples)


VOCABULARY = ("model.vocabulary", "word_vocabulary")
METHODS: dict[str, DemoMethod] = {
    m.name: m
    for m in (
        _method(
            "case",
            PLAIN_TEMPLATE,
            ("model.tokenizer", "wordpiece"),
            recipe=REPO / "configs" / "pretrain" / "case_tiny.yaml",
            size_keys=("model.image_size",),
        ),
        # its random CLIP's vision tower is built for 32 px (the recipe's clip_config)
        _method("clip4cir", PLAIN_TEMPLATE, size_keys=()),
        _method("tirg", PLAIN_TEMPLATE, ("model.vocabulary", "tirg_vocabulary")),
        _method("artemis", WORD_TEMPLATE, VOCABULARY),
        _method("cmap", WORD_TEMPLATE, VOCABULARY),
        _method("manme", WORD_TEMPLATE, VOCABULARY),
        _method("composeae", PLAIN_TEMPLATE, ("model.text_model", "random_bert")),
        _method("crn", CRN_TEMPLATE, ("model.vocabulary", "tirg_vocabulary")),
        # zero-shot: trains on the splits' images alone, queried with its prompt; the reference joins
        # FashionIQ's captions in this order (src/data.py: 'a photo of * , {cap2} and {cap1}')
        _method("pic2word", PIC2WORD_TEMPLATE, size_keys=(), samples="images"),
    )
}


def parse_methods(text: str) -> list[DemoMethod]:
    names = list(METHODS) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise ConfigError(
            f"--methods: unknown {', '.join(map(repr, unknown)) or 'empty list'}; "
            f"choose 'all' or a comma-separated list of {', '.join(METHODS)}"
        )
    return [METHODS[n] for n in names]


# ---------------------------------------------------------------- inputs, made once per demo folder

DATASETS = ("fashioniq", "shoes", "fashion200k")  # trained on together, each evaluated on its own split


def _training_captions(world: Path) -> list[str]:
    from coir.datasets.vocab import dataset_captions

    return [c for dataset in DATASETS for c in dataset_captions(dataset, world / dataset, "train")]


def _word_vocabulary(world: Path, out: Path, tokenizer: str) -> Path:
    from coir.datasets.vocab import LEADING_WORDS, Vocabulary

    path = out / f"vocabulary_{tokenizer}.json"
    if not path.is_file():
        leading = LEADING_WORDS["fashion200k"] if tokenizer == "artemis" else ()
        Vocabulary.from_captions(_training_captions(world), 0, leading, tokenizer).save(path)
    return path


def _wordpiece(world: Path, out: Path) -> Path:
    from coir.pipeline.models.blip.tokenizer import train_wordpiece

    folder = out / "wordpiece"
    if not (folder / "tokenizer.json").is_file():
        train_wordpiece(_training_captions(world), folder, vocab_size=1000)
    return folder


def _random_bert(world: Path, out: Path) -> Path:
    """ComposeAE's frozen BERT: here a random 2-layer one (nothing downloads), its WordPiece tokenizer
    trained on the training captions."""
    from coir.pipeline.models.composeae.text import write_random_bert

    folder = out / "bert"
    if not (folder / "config.json").is_file():
        write_random_bert(folder, _training_captions(world))
    return folder


INPUTS: dict[str, Callable[[Path, Path], Path]] = {
    "word_vocabulary": lambda world, out: _word_vocabulary(world, out, "artemis"),
    "tirg_vocabulary": lambda world, out: _word_vocabulary(world, out, "tirg"),
    "wordpiece": _wordpiece,
    "random_bert": _random_bert,
}


def _shards(dataset: str, world: Path, folder: Path, size: int, part: str, **options: Any) -> Path:
    """The `part` (triplets or gallery) of the dataset's training shards, built once into `folder`."""
    from coir.common.config import load_config
    from coir.datasets.shards.finetune_sets import (
        BenchmarkShardsConfig,
        build_benchmark_shards,
        finalize_benchmark_shards,
    )

    if not (folder / "triplets" / "manifest.json").is_file():
        overrides = [f"dataset={dataset}", f"root={world / dataset}", "split=train", f"out={folder}"]
        config = load_config(BenchmarkShardsConfig, overrides=[*overrides, f"size={size}"])
        for key, value in options.items():  # set here: a template's braces are no YAML
            setattr(config, key, value)
        build_benchmark_shards(config, progress=False)
        finalize_benchmark_shards(folder)
    return folder / part


def training_shards(
    world: Path, out: Path, template: str, size: int, samples: str = "triplets"
) -> list[Path]:
    """The three training splits' triplets, or (samples: images) their images; FashionIQ's captions
    joined by `template` (one build each)."""
    digest = hashlib.sha1(template.encode()).hexdigest()[:8]
    fashioniq = out / f"fashioniq_{digest}"
    part = "gallery" if samples == "images" else "triplets"
    return [
        _shards("fashioniq", world, fashioniq, size, part, fashioniq_template=template),
        _shards("shoes", world, out / "shoes", size, part),
        _shards("fashion200k", world, out / "fashion200k", size, part, pairs_per_image=2),
    ]


# ---------------------------------------------------------------- training and evaluation


def settings(method: DemoMethod, inputs: dict[str, Path], args: argparse.Namespace) -> list[str]:
    """The command-line overrides of the method's recipe: its inputs and the demo's shared budget."""
    common = [
        f"model.name={method.name}",
        f"data.batch_size={args.batch_size}",
        f"optim.total_steps={args.steps}",
        f"optim.warmup_steps={max(1, args.steps // 20)}",
        "checkpoint.every_steps=0",
        "validation.benchmark=null",
        "logging.tensorboard=false",
    ]
    common += [f"{key}={args.image_size}" for key in method.size_keys]
    return [f"{key}={inputs[name]}" for key, name in method.inputs] + common


def untrained_export(method: DemoMethod, overrides: list[str], out: Path) -> Path:
    """The recipe's model at the trainer's initialisation (the trainer's seeding), exported untrained."""
    from coir.pipeline import engine
    from coir.pipeline.config import load_train_config
    from coir.pipeline.models.export import save_export
    from coir.pipeline.models.registry import build_model

    if (out / "coir_model.json").is_file():
        return out
    config = load_train_config(method.recipe, overrides)
    engine._seed_all(config.seed)
    return save_export(build_model(config.model), out)


def train(method: DemoMethod, overrides: list[str], shards: list[Path], run_dir: Path) -> Path:
    export = run_dir / "export"
    if (export / "coir_model.json").is_file():
        print(f"   reusing {export}")
        return export
    command = [sys.executable, "-m", "coir.pipeline.train_cli", str(method.recipe), *overrides]
    command += [f"data.shards=[{','.join(map(str, shards))}]", f"run_dir={run_dir}", "--resume", "auto"]
    print("   coir train " + " ".join(command[3:]), flush=True)
    subprocess.run(command, check=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    return export


# (benchmark, split, options of the method) of each evaluation
EVALUATIONS: tuple[tuple[str, str, Callable[[DemoMethod], dict[str, Any]]], ...] = (
    ("fashioniq", "val", lambda method: {"caption_template": method.template}),
    ("shoes", "test", lambda method: {}),
    ("fashion200k", "test", lambda method: {}),
)
# the table's columns: (results task, metric). FashionIQ's R@50 is left out: the synthetic galleries hold
# fewer than 50 images a category, so it is 100 for every model (it is in results.json).
COLUMNS = (
    ("fashioniq/val", "R@10"),
    ("shoes/test", "R@1"),
    ("shoes/test", "R@10"),
    ("fashion200k/test", "R@10"),
    ("fashion200k/test", "R@50"),
)


def evaluate(export: Path, label: str, method: DemoMethod, world: Path, out: Path) -> None:
    """`coir eval` of the export on each benchmark; results merged into <out>/results.json under `label`."""
    from coir.eval.api import evaluate as run_evaluation
    from coir.eval.config import EvalConfig

    for benchmark, split, options in EVALUATIONS:
        config = EvalConfig(
            checkpoint=str(export), benchmark=benchmark, split=split, data_root=str(world / benchmark),
            out=str(out / "eval"), results=str(out / "results.json"), model_name=label, device="cpu",
            num_workers=0, batch_size=128, pictures=False, options={benchmark: options(method)},
        )  # fmt: skip
        run_evaluation(export, config, progress=False)


def comparison_table(results: dict[str, Any], methods: list[DemoMethod]) -> str:
    """One row per method, one column per (benchmark, recall) of COLUMNS, each cell untrained -> trained
    (FashionIQ: the mean of its three categories)."""
    titles = [f"{task.split('/')[0]} {metric}" for task, metric in COLUMNS]
    lines = ["| method | " + " | ".join(titles) + " |", "| --- |" + " ---: |" * len(COLUMNS)]
    for method in methods:
        cells = []
        for task, metric in COLUMNS:
            models = results.get(task, {})
            before = models.get(f"{method.name} untrained", {}).get(metric)
            after = models.get(method.name, {}).get(metric)
            cells.append("" if before is None or after is None else f"{before:.1f} -> {after:.1f}")
        lines.append(f"| {method.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_methods(args: argparse.Namespace, build_world: Callable[[Path, int, str], dict]) -> int:
    from coir.common.atomic import write_bytes_atomic
    from coir.eval.report import read_results

    methods = parse_methods(args.methods)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    world, inputs_dir = out / "world", out / "inputs"
    print(f"\n== synthetic world ({args.scale}, seed {args.seed}) -> {world}", flush=True)
    build_world(world, args.seed, args.scale)
    inputs_dir.mkdir(exist_ok=True)
    results_file = out / "results.json"
    results_file.unlink(missing_ok=True)
    for i, method in enumerate(methods, 1):
        since = time.perf_counter()
        print(f"\n== {i}/{len(methods)} {method.name}: {method.recipe.relative_to(REPO)}", flush=True)
        inputs = {name: INPUTS[name](world, inputs_dir) for _, name in method.inputs}
        overrides = settings(method, inputs, args)
        shards = training_shards(world, inputs_dir, method.template, args.image_size, method.samples)
        runs = out / "models" / method.name
        untrained = untrained_export(method, overrides, runs / "untrained")
        trained = train(method, overrides, shards, runs / "train")
        for export, label in ((untrained, f"{method.name} untrained"), (trained, method.name)):
            evaluate(export, label, method, world, out)
        print(f"   ({time.perf_counter() - since:.0f} s)", flush=True)
    table = comparison_table(read_results(results_file), methods)
    header = (
        f"Synthetic world ({args.scale}): FashionIQ val (mean of the 3 categories), Shoes test and "
        f"Fashion200k test, untrained -> trained. Every method trained {args.steps} steps of "
        f"{args.batch_size} at {args.image_size} px on the three training splits together, from its tiny "
        "recipe.\n\n"
    )
    write_bytes_atomic(out / "results.md", (header + table).encode())
    print("\n" + header + table)
    print(f"results: {results_file}, {out / 'results.md'}")
    print(f"methods demo finished in {time.perf_counter() - started:.0f} s")
    return 0

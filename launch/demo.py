"""`coir demo`: the whole pipeline on the embedded synthetic world, on CPU, in a few minutes.

    world (coir data synth) -> LaSCo train/val shards (coir data lasco) -> tokenizer ->
    pretrain CASE, image-only and text-only (coir train, one subprocess each) ->
    LaSCo val retrieval + modality redundancy (coir eval) -> the zero-shot report on the world's
    CIRR, CIRCO and FashionIQ (coir eval zeroshot: CASE, the trained image-only and text-only, and
    CASE's sum baseline) -> tables on stdout, <out>/results.json, <out>/zeroshot/results.md

Every stage is the library code the CLI commands run; finished stages are reused on a rerun
(the world when its seed and scale match, shards by the builder's own resume, trained models
when their export exists), so an interrupted demo picks up where it stopped.

`coir demo --methods all|NAME,...` runs the other demo instead: every method trained alike on the
synthetic fashion-style data and compared untrained -> trained (coir.launch.methods_demo).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HELP = "run the whole pipeline on the synthetic world: build, shard, pretrain, evaluate"
EXAMPLE = """\
coir demo --out runs/demo
coir demo --out runs/quick --scale tiny --steps 30 --baseline-steps 10
coir demo --methods all --out runs/methods     # every method side by side (about 10 min on 2 cores)
coir demo --methods tirg,artemis --out runs/two --scale tiny --steps 50"""

MODELS = ("case", "image-only", "text-only")
RECIPE = Path(__file__).resolve().parents[1] / "configs" / "pretrain" / "case_tiny.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default=None, help="output folder (default: runs/demo; --methods: runs/methods)"
    )
    parser.add_argument("--scale", default="small", choices=("tiny", "small", "medium"), help="world size")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default: %(default)s)")
    parser.add_argument(
        "--methods",
        default=None,
        metavar="all|NAME,...",
        help="instead of the CASE pipeline, train these methods alike on the synthetic FashionIQ-, Shoes- "
        "and Fashion200k-style data and compare them untrained -> trained (coir.launch.methods_demo; 'all' = "
        "case, clip4cir, tirg, artemis, cmap, manme, composeae, crn, pic2word)",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps per model (default: 200; --methods: 150)"
    )
    parser.add_argument(
        "--baseline-steps",
        type=int,
        default=None,
        help="steps for each baseline (default: as many as CASE, a like-for-like comparison)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="training batch (default: 64; --methods: 16)"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=32,
        help="--methods: shard and model image size (default: %(default)s)",
    )
    parser.add_argument("--recipe", default=str(RECIPE), help="training recipe YAML (default: case_tiny)")


def _stage(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def _done(since: float) -> None:
    print(f"   ({time.perf_counter() - since:.1f} s)", flush=True)


def build_world_once(folder: Path, seed: int, scale: str) -> dict[str, Any]:
    from coir.datasets.synth import build_world

    summary_file = folder / "world.json"
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        if summary.get("seed") == seed and summary.get("scale") == scale:
            print(f"   reusing {folder} (seed {seed}, scale {scale})")
            return summary
    return build_world(folder, seed=seed, scale=scale, progress=True)


def build_lasco_split(world: Path, out: Path, split: str) -> dict[str, Any]:
    from coir.common.config import load_config
    from coir.datasets.lasco.build import build_lasco, finalize_build
    from coir.datasets.lasco.config import LascoBuildConfig

    config = load_config(
        LascoBuildConfig,
        overrides=[
            f"out={out}",
            f"split={split}",
            f"vqa={world / 'vqa'}",
            f"coco={world / 'coco'}",
            "images.size=64",
            "shard_size=500",
        ],
    )
    build_lasco(config, progress=True)
    return finalize_build(out)


def train_tokenizer(world: Path, lasco_train: Path, out: Path) -> Path:
    """WordPiece over the pretraining texts plus the benchmarks' TRAIN captions (vocabulary only)."""
    from coir.datasets.cirr import read_cirr_triplets
    from coir.datasets.fashioniq import read_fashioniq_triplets
    from coir.datasets.lasco_files import read_lasco_triplets
    from coir.datasets.records import FASHIONIQ_CATEGORIES
    from coir.pipeline.models.blip.tokenizer import train_wordpiece

    if (out / "tokenizer.json").is_file():
        return out
    texts = [t.query_text for t in read_lasco_triplets(lasco_train / "lasco_train.json")]
    texts += [t.caption for t in read_cirr_triplets(world / "cirr", "train")]
    for category in FASHIONIQ_CATEGORIES:
        for triplet in read_fashioniq_triplets(world / "fashioniq", category, "train"):
            texts.extend(triplet.captions)
    return train_wordpiece(texts, out, vocab_size=1000)


def train_model(name: str, steps: int, args: argparse.Namespace, shards: Path, tokenizer: Path) -> Path:
    """One `coir train` subprocess per model (a fresh process group each); returns the export."""
    run_dir = Path(args.out) / "models" / name
    export = run_dir / "export"
    if (export / "coir_model.json").is_file():
        print(f"   reusing {export}")
        return export
    command = [
        sys.executable,
        "-m",
        "coir.pipeline.train_cli",
        args.recipe,
        f"run_dir={run_dir}",
        f"model.name={name}",
        f"model.tokenizer={tokenizer}",
        f"data.shards=[{shards}]",
        f"data.batch_size={args.batch_size}",
        f"optim.total_steps={steps}",
        f"optim.warmup_steps={max(1, steps // 20)}",
        f"checkpoint.every_steps={max(1, steps // 2)}",
        "--resume",
        "auto",
    ]
    print("   " + " ".join(command[2:]), flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    subprocess.run(command, check=True, env=env)
    return export


def evaluate_all(args: argparse.Namespace, world: Path, lasco_val: Path, exports: dict[str, Path]) -> str:
    """LaSCo val with the redundancy analysis, then the zero-shot report; returns the report's text."""
    from dataclasses import replace

    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig
    from coir.eval.zeroshot import benchmark_roots, run_zero_shot
    from coir.eval.zeroshot_report import report_markdown, write_report

    out = Path(args.out)
    common = EvalConfig(
        out=str(out / "eval"),
        results=str(out / "results.json"),
        batch_size=128,
        num_workers=0,
        device="cpu",
        image_only=str(exports["image-only"]),
        text_only=str(exports["text-only"]),
    )
    lasco = replace(
        common, benchmark="lasco", data_root=str(lasco_val), image_root=str(world / "coco"), redundancy=True
    )
    evaluate(exports["case"], lasco, progress=True)
    report = run_zero_shot(exports["case"], common, benchmark_roots(world, {}), progress=True)
    write_report(report, out / "zeroshot", results=out / "results.json")
    return report_markdown(report)


def run(args: argparse.Namespace) -> int:
    if args.methods is not None:
        from coir.launch.methods_demo import run_methods

        args.out = args.out or "runs/methods"
        args.steps = args.steps or 150
        args.batch_size = args.batch_size or 16
        return run_methods(args, build_world_once)
    args.out = args.out or "runs/demo"
    args.steps = args.steps or 200
    args.batch_size = args.batch_size or 64
    return run_pipeline(args)


def run_pipeline(args: argparse.Namespace) -> int:
    from coir.datasets.lasco.cli import format_report
    from coir.eval.report import read_results, results_markdown

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    world = out / "world"
    started = time.perf_counter()

    since = _stage(f"1/5 synthetic world ({args.scale}, seed {args.seed}) -> {world}")
    summary = build_world_once(world, args.seed, args.scale)
    print("   " + json.dumps(summary.get("counts", {}))[:400])
    _done(since)

    since = _stage("2/5 LaSCo construction and shards (train, val)")
    lasco = {split: out / "lasco" / split for split in ("train", "val")}
    for split, folder in lasco.items():
        report = build_lasco_split(world, folder, split)
        print(format_report(report))
    _done(since)

    since = _stage("3/5 tokenizer")
    tokenizer = train_tokenizer(world, lasco["train"], out / "tokenizer")
    _done(since)

    since = _stage("4/5 pretraining CASE and the image-only / text-only baselines")
    exports = {}
    baseline_steps = args.baseline_steps or args.steps
    for name in MODELS:
        steps = args.steps if name == "case" else baseline_steps
        exports[name] = train_model(name, steps, args, lasco["train"] / "triplets", tokenizer)
    _done(since)

    since = _stage("5/5 evaluation: LaSCo val (+ redundancy), the zero-shot report (CIRR, CIRCO, FashionIQ)")
    results_file = out / "results.json"
    results_file.unlink(missing_ok=True)
    zero_shot = evaluate_all(args, world, lasco["val"], exports)
    _done(since)

    lasco_rows = {k: v for k, v in read_results(results_file).items() if k.startswith("lasco/")}
    print("\n" + results_markdown(lasco_rows))
    print(zero_shot)
    print(f"results: {results_file}   LaSCo pictures and pages: {out / 'eval'}")
    print(f"zero-shot report (results.md, top-5 pictures): {out / 'zeroshot'}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return 0

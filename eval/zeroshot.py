"""The zero-shot report: one checkpoint on every zero-shot benchmark (each benchmark module whose
`report_metrics` is not empty: CIRR, CIRCO, FashionIQ), on its labelled val split, beside the
baselines its family derives from the same weights.

Rows: the model, then each baseline the family offers (FamilySpec.baselines: image-only, text-only,
sum), derived from the checkpoint (registry.derive_baseline), or a trained export given as
config.image_only / config.text_only in place of that derived one. A baseline the family offers but
cannot derive from this model (a BLIP checkpoint that is itself a baseline) is left out with a note.

Each task's gallery is embedded once, by the model (cached per checkpoint and gallery like
`coir eval`'s). A baseline ranks against that embedding when its target encoder is the model's,
checked on the first gallery images (the derived baselines share the model's target encoder); a
baseline with another one (a trained export) embeds the gallery itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from coir.common.errors import ConfigError, MissingInputError
from coir.eval.benchmarks import benchmark_names, get_benchmark
from coir.eval.config import EvalConfig, check_eval_config, eval_device

log = logging.getLogger(__name__)

SPLIT = "val"  # the labelled split of every zero-shot benchmark (CIRR test1, CIRCO test: server files)
CHECK_IMAGES = 4  # gallery images a baseline's target encoder is compared with the model's on
TRAINED = {"image-only": "image_only", "text-only": "text_only"}  # baseline -> EvalConfig key of an export

Fragment = dict[str, dict[str, dict[str, Any]]]


@dataclass
class Row:
    name: str  # the row's name in results.json
    model: Any
    fingerprint: str | None  # the gallery cache's checkpoint identity (None: not cached)


@dataclass
class ZeroShotReport:
    checkpoint: str
    rows: list[str]  # the model first, then the baselines
    roots: dict[str, tuple[str, str | None]]  # benchmark -> (data root, image root)
    results: Fragment = field(default_factory=dict)  # {"<task or summary>": {row: metrics}}
    task_results: dict[str, list[Any]] = field(default_factory=dict)  # task -> TaskResult per row
    notes: list[str] = field(default_factory=list)  # what the report left out or did otherwise, and why


def zero_shot_benchmarks() -> list[str]:
    return [name for name in benchmark_names() if get_benchmark(name).report_metrics]


def benchmark_roots(
    world: str | Path | None,
    given: Mapping[str, str | None],
    images: Mapping[str, str | None] | None = None,
) -> dict[str, tuple[str, str | None]]:
    """benchmark -> (data root, image root): `given[name]` when set, else `world`/<name> when that
    folder exists (a synthetic world holds cirr/, circo/, fashioniq/). ConfigError when none is found."""
    images = images or {}
    if world is not None and not Path(world).is_dir():
        raise MissingInputError(Path(world), "data root (a folder holding cirr/, circo/, fashioniq/ ...)")
    names = zero_shot_benchmarks()
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ConfigError(f"{unknown[0]!r} is not a zero-shot benchmark (these are: {', '.join(names)})")
    roots = {}
    for name in names:
        root = given.get(name) or (Path(world) / name if world is not None else None)
        if root is not None and (given.get(name) or Path(root).is_dir()):
            roots[name] = (str(root), images.get(name))
    if not roots:
        where = f"{world} holds none of {', '.join(f'{n}/' for n in names)}" if world else "no folder given"
        raise ConfigError(f"no zero-shot benchmark to evaluate: {where} (give --data-root or --<benchmark>)")
    return roots


def report_rows(
    model: Any, name: str, fingerprint: str | None, config: EvalConfig
) -> tuple[list[Row], list[str]]:
    """(the model's row and its baselines' rows, notes on the baselines left out)."""
    from coir.eval.api import load_model
    from coir.eval.encode import checkpoint_fingerprint
    from coir.pipeline.models.registry import derive_baseline, family_of

    spec = family_of(model)
    for kind, key in TRAINED.items():
        if getattr(config, key) is not None and kind not in spec.baselines:
            raise ConfigError(f"key {key!r}: the {spec.name} family has no {kind} baseline to replace")
    rows, notes = [Row(name, model, fingerprint)], []
    if not spec.baselines:
        notes.append(f"the {spec.name} family offers no baselines")
    for kind in spec.baselines:
        trained = getattr(config, TRAINED[kind]) if kind in TRAINED else None
        if trained is not None:
            loaded = load_model(trained, eval_device(config))
            rows.append(Row(getattr(loaded, "name", "") or kind, loaded, checkpoint_fingerprint(trained)))
            continue
        try:
            rows.append(Row(f"{name}-{kind}", derive_baseline(model, kind), fingerprint))
        except ConfigError as error:
            notes.append(f"no {kind} row: {error}")
    names = [r.name for r in rows]
    if len(set(names)) < len(names):
        raise ConfigError(
            f"two rows of the report are named alike ({', '.join(names)}): give the model another "
            "--model-name, or trained baselines of other names"
        )
    return rows, notes


@torch.no_grad()
def same_target_encoder(model: Any, other: Any, paths: list[Path], config: EvalConfig) -> bool:
    """Whether `other` embeds these gallery images as `model` does (to 1e-5): then it may rank against
    the model's gallery embedding."""
    from coir.eval.encode import encode_images
    from coir.pipeline.models.state import leaves

    device = eval_device(config)
    mine = leaves(encode_images(model.eval(), paths, len(paths), device))
    theirs = leaves(encode_images(other.eval(), paths, len(paths), device))
    return len(mine) == len(theirs) and all(
        a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)
        for a, b in zip(mine, theirs, strict=True)
    )


def run_zero_shot(
    checkpoint: str | Path,
    config: EvalConfig,
    roots: Mapping[str, tuple[str, str | None]],
    progress: bool = False,
) -> ZeroShotReport:
    """Evaluate `checkpoint` (an export folder) and its baselines on each benchmark of `roots` (see
    benchmark_roots). `config` gives everything but the benchmark, split and roots: batch size,
    device, cache, the benchmarks' options (CIRCO's query template ...), the model's row name."""
    from coir.eval.api import load_model
    from coir.eval.encode import checkpoint_fingerprint, default_cache_dir
    from coir.eval.runner import run_task, task_gallery
    from coir.pipeline.card import model_name_of

    config = replace(config, device=eval_device(config), checkpoint=str(checkpoint))
    configs = {
        name: replace(config, benchmark=name, split=SPLIT, data_root=data_root, image_root=image_root)
        for name, (data_root, image_root) in roots.items()
    }
    for benchmark_config in configs.values():
        check_eval_config(benchmark_config)
    model = load_model(checkpoint, str(config.device))
    fingerprint = checkpoint_fingerprint(checkpoint)
    name = config.model_name or model_name_of(checkpoint) or getattr(model, "name", "") or "model"
    rows, notes = report_rows(model, name, fingerprint, config)
    report = ZeroShotReport(str(checkpoint), [r.name for r in rows], dict(roots), notes=notes)
    cache_root = (config.cache_dir or default_cache_dir()) if config.cache else None
    shares: dict[str, bool] = {}  # row -> ranks against the model's gallery embedding
    for benchmark_name, benchmark_config in configs.items():
        benchmark = get_benchmark(benchmark_name)
        tasks = benchmark.tasks(benchmark_config)
        for task in tasks:
            if not shares:
                sample = task.gallery_paths[:CHECK_IMAGES]
                shares = {
                    r.name: r is rows[0] or same_target_encoder(model, r.model, sample, config) for r in rows
                }
                notes += [
                    f"{r} embeds the galleries itself (another target encoder)"
                    for r, s in shares.items()
                    if not s
                ]
            log.info(
                "%s: %d queries, %d gallery images", task.name, len(task.queries), len(task.gallery_paths)
            )
            gallery = task_gallery(model, task, benchmark_config, fingerprint, cache_root, progress)
            results = [
                run_task(
                    r.model,
                    task,
                    benchmark_config,
                    r.name,
                    r.fingerprint,
                    cache_root,
                    progress,
                    gallery=gallery if shares[r.name] else None,
                )  # fmt: skip
                for r in rows
            ]
            report.task_results[task.name] = results
            report.results[task.name] = {result.model_name: result.metrics for result in results}
        for row in report.rows:
            summary = benchmark.summary([report.results[t.name][row] for t in tasks])
            if summary is not None:
                report.results.setdefault(benchmark.headline(SPLIT), {})[row] = summary
    return report

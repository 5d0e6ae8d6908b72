"""The library entry point the CLI, the demo, the validators and the SLURM sweep call.

config = load_config(EvalConfig, "configs/zeroshot/cirr.yaml", ["data_root=W/cirr", "out=runs/x/eval"])
evaluation = evaluate("runs/x/export", config)   # or a model object
write_results("runs/x/results.json", evaluation.fragment)   # with config.out, evaluate merges its own
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from coir.eval.benchmarks import Benchmark, get_benchmark
from coir.eval.config import REDUNDANCY_BASELINES, EvalConfig, check_eval_config, eval_device
from coir.eval.report import write_results
from coir.eval.tasks import check_task

log = logging.getLogger(__name__)

__all__ = ["Evaluation", "evaluate", "load_model", "write_results"]

Fragment = dict[str, dict[str, dict[str, float]]]


@dataclass
class Evaluation:
    fragment: Fragment  # {"<benchmark>/<split>": {"<model>": {"<metric>": value}}}
    results: dict[str, list[Any]]  # task name -> TaskResult per model (full model first)
    redundancy: dict[str, Any]  # task name -> redundancy summary (empty without config.redundancy)


def load_model(checkpoint: str | Path, device: str = "cpu") -> Any:
    """An exported model directory (model.safetensors + coir_model.json + tokenizer/)."""
    from coir.pipeline.models.export import load_export

    return load_export(checkpoint, device=str(device))


def _file_stem(task_name: str, model_name: str) -> str:
    return f"{task_name.replace('/', '-')}-{model_name}".replace("/", "-")


def evaluate(
    model_or_checkpoint: Any,
    config: EvalConfig,
    *,
    image_only: Any = None,
    text_only: Any = None,
    progress: bool = False,
) -> Evaluation:
    """Evaluate a model (or an export directory) on config.benchmark / config.split.

    The config is checked first. With config.out, rank 0 also merges the fragment into
    out/results.json (or config.results), writes results.md, the benchmark's submission files, a
    retrieval picture and an HTML page per task, and with config.redundancy the modality-redundancy
    summary (redundancy.json / redundancy.md). `image_only` / `text_only`: trained baseline models
    (objects) in place of the config's paths; `progress`: progress bars.
    """
    from coir.eval.encode import default_cache_dir, world
    from coir.eval.runner import run_task

    check_eval_config(config)
    benchmark = get_benchmark(str(config.benchmark))
    tasks = benchmark.tasks(config)
    for task in tasks:  # repeated ids are errors before any model runs or file is written
        check_task(task)
    config = replace(config, device=eval_device(config))
    device = str(config.device)
    model, fingerprint = _resolve(model_or_checkpoint, device)
    card_dir = Path(model_or_checkpoint) if isinstance(model_or_checkpoint, (str, Path)) else None
    model_name = config.model_name or _card_name(card_dir) or getattr(model, "name", "") or "model"
    if config.baseline:
        model = _derive(model, config.baseline)
        model_name = f"{model_name}-{config.baseline}"
    cache_root = (config.cache_dir or default_cache_dir()) if config.cache else None

    models = [(model, model_name, fingerprint)]
    if config.redundancy:
        trained = {"image-only": image_only, "text-only": text_only}
        paths = {"image-only": config.image_only, "text-only": config.text_only}
        for kind in REDUNDANCY_BASELINES:
            source = trained[kind] if trained[kind] is not None else paths[kind]
            if source is not None:
                # a trained baseline is a model of its own: it keeps its own name ("image-only")
                loaded, loaded_fingerprint = _resolve(source, device)
                models.append((loaded, getattr(loaded, "name", "") or kind, loaded_fingerprint))
            else:
                models.append((_derive(model, kind), f"{model_name}-{kind}", fingerprint))

    fragment: Fragment = {}
    results: dict[str, list[Any]] = {}
    for task in tasks:
        results[task.name] = [
            run_task(m, task, config, name, fp, cache_root, progress) for m, name, fp in models
        ]
        for result in results[task.name]:
            fragment.setdefault(task.name, {})[result.model_name] = result.metrics
    if tasks:
        for _, name, _ in models:
            row = benchmark.summary([fragment[t.name][name] for t in tasks])
            if row is not None:
                fragment.setdefault(benchmark.headline(config.split), {})[name] = row

    roots = (config.data_root, config.image_root)
    summaries = _redundancy(results, roots, benchmark, config.redundancy_k) if config.redundancy else {}
    if config.out is not None and world()[0] == 0:
        _write_outputs(Path(config.out), fragment, results, summaries, config, benchmark)
    if card_dir is not None and world()[0] == 0:
        _append_to_card(card_dir, fragment, config)
    return Evaluation(fragment, results, summaries)


def _card_name(folder: Path | None) -> str | None:
    from coir.pipeline.card import model_name_of

    return model_name_of(folder) if folder is not None else None


def _append_to_card(folder: Path, fragment: Fragment, config: EvalConfig) -> None:
    """The results, appended to the provenance card of the checkpoint evaluated (when it has one)."""
    from coir.pipeline.card import append_evaluation

    entry = {
        "benchmark": config.benchmark,
        "split": config.split,
        "data_root": str(Path(str(config.data_root)).resolve()),
        "baseline": config.baseline,
        "out": str(Path(config.out).resolve()) if config.out else None,
        "results": fragment,
    }
    if append_evaluation(folder, entry) is not None:
        log.info("appended the results to %s's provenance card", folder)


def _resolve(model_or_checkpoint: Any, device: str) -> tuple[Any, str | None]:
    from coir.eval.encode import checkpoint_fingerprint

    if isinstance(model_or_checkpoint, (str, Path)):
        return load_model(model_or_checkpoint, device), checkpoint_fingerprint(model_or_checkpoint)
    return model_or_checkpoint.to(device), None


def _derive(model: Any, kind: str) -> Any:
    from coir.pipeline.models.registry import derive_baseline

    return derive_baseline(model, kind)


def _redundancy(
    results: dict[str, list[Any]], roots: Sequence[Any], benchmark: Benchmark, ks: Sequence[int]
) -> dict[str, Any]:
    from coir.eval.redundancy import compare_with_truth, labels_at, load_truth, redundancy_summary, truth_path

    summaries = {}
    for name, (full, image, text) in results.items():
        summary = redundancy_summary(
            full.ranking.target_rank, image.ranking.target_rank, text.ranking.target_rank, ks
        )
        path = truth_path(roots, benchmark.truth_file(full.task))
        keys = [q.key for q in full.task.queries]
        for k in sorted({1, *ks}):  # per query: which modality alone solves it within the top k
            summary[f"labels@{k}"] = dict(
                zip(keys, labels_at(image.ranking.target_rank, text.ranking.target_rank, k), strict=True)
            )
        labels = list(summary["labels@1"].values())
        if path is not None:
            summary["truth"] = {"file": str(path), "k": 1} | compare_with_truth(
                [benchmark.truth_key(q) for q in full.task.queries], labels, load_truth(path)
            )
        summaries[name] = summary
    return summaries


def _write_outputs(
    out: Path,
    fragment: dict[str, Any],
    results: dict[str, list[Any]],
    summaries: dict[str, Any],
    config: EvalConfig,
    benchmark: Benchmark,
) -> None:
    from coir.common.atomic import write_bytes_atomic
    from coir.common.json_io import write_json_atomic
    from coir.eval.redundancy import redundancy_markdown
    from coir.eval.report import retrieval_grid, retrieval_html, write_markdown

    out.mkdir(parents=True, exist_ok=True)
    for task_results in results.values():  # each submission file is checked as it is written: first
        for result in task_results:
            benchmark.write_submissions(result, out / "submissions")
    merged = write_results(config.results or out / "results.json", fragment)
    write_markdown(out / "results.md", merged)
    for task_results in results.values():
        for result in task_results:
            stem = _file_stem(result.task.name, result.model_name)
            if config.pictures and result is task_results[0]:
                retrieval_grid(result, out / f"{stem}.png")
                retrieval_html(result, out / f"{stem}.html")
    if summaries:
        merged_summaries = {}
        redundancy_file = out / "redundancy.json"
        if redundancy_file.is_file():
            from coir.common.json_io import load_json

            previous = load_json(redundancy_file)
            merged_summaries = previous if isinstance(previous, dict) else {}
        merged_summaries.update(summaries)
        write_json_atomic(redundancy_file, merged_summaries, indent=1)
        text = "\n".join(redundancy_markdown(name, s) for name, s in merged_summaries.items())
        write_bytes_atomic(out / "redundancy.md", text.encode())
    log.info("wrote %s", out)

"""The library entry point the CLI, the demo, the validators and the SLURM sweep call.

fragment = evaluate("runs/x/export", "cirr", "val", "W/cirr", out_dir="runs/x/eval")
write_results("runs/x/results.json", fragment)   # evaluate(out_dir=…) already merges its own
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coir.datasets.records import FASHIONIQ_CATEGORIES
from coir.eval.config import DEFAULT_MEMORY_GB
from coir.eval.metrics import mean_metrics
from coir.eval.report import write_results
from coir.eval.tasks import FASHIONIQ_TEMPLATE, build_tasks

log = logging.getLogger(__name__)

__all__ = ["Evaluation", "evaluate", "evaluate_detailed", "load_model", "write_results"]

Fragment = dict[str, dict[str, dict[str, float]]]


@dataclass
class Evaluation:
    fragment: Fragment  # {"<benchmark>/<split>": {"<model>": {"<metric>": value}}}
    results: dict[str, list[Any]]  # task name -> TaskResult per model (full model first)
    redundancy: dict[str, Any]  # task name -> redundancy summary (empty without redundancy=True)


def load_model(checkpoint: str | Path, device: str = "cpu") -> Any:
    """An exported model directory (model.safetensors + coir_model.json + tokenizer/)."""
    from coir.pipeline.models.export import load_export

    return load_export(checkpoint, device=str(device))


def _file_stem(task_name: str, model_name: str) -> str:
    return f"{task_name.replace('/', '-')}-{model_name}".replace("/", "-")


def evaluate(*args: Any, **kwargs: Any) -> Fragment:
    """Evaluate a model (or an export directory) on one benchmark split; returns the results.json
    fragment {"<benchmark>/<split>": {"<model>": {"<metric>": value}}}. Arguments: evaluate_detailed."""
    return evaluate_detailed(*args, **kwargs).fragment


def evaluate_detailed(
    model_or_checkpoint: Any,
    benchmark: str,
    split: str,
    data_root: str | Path,
    image_root: str | Path | None = None,
    out_dir: str | Path | None = None,
    model_name: str = "case",
    *,
    baseline: str | None = None,
    redundancy: bool = False,
    image_only: str | Path | None = None,
    text_only: str | Path | None = None,
    redundancy_ks: Sequence[int] = (1, 10),
    categories: Sequence[str] = FASHIONIQ_CATEGORIES,
    fashioniq_template: str = FASHIONIQ_TEMPLATE,
    mask_reference: bool = False,
    batch_size: int = 128,
    device: str = "cpu",
    num_workers: int = 0,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    k: int = 50,
    memory_gb: float = DEFAULT_MEMORY_GB,
    pictures: bool = True,
    progress: bool = False,
    results_file: str | Path | None = None,
) -> Evaluation:
    """Evaluate a model (or an export directory) on one benchmark split.

    With out_dir, rank 0 also merges the fragment into out_dir/results.json (or results_file),
    writes results.md, the CIRR submission files, a retrieval picture and an HTML page per task,
    and with `redundancy` the modality-redundancy summary (redundancy.json / redundancy.md).
    """
    from coir.eval.encode import default_cache_dir, world
    from coir.eval.runner import run_task

    model, fingerprint = _resolve(model_or_checkpoint, device)
    if baseline:
        model = _derive(model, baseline)
        model_name = f"{model_name}-{baseline}"
    tasks = build_tasks(
        benchmark, split, data_root, image_root, tuple(categories), fashioniq_template, mask_reference
    )
    cache_root = (cache_dir or default_cache_dir()) if cache else None

    def run(m: Any, name: str, fp: str | None, task: Any) -> Any:
        return run_task(
            m,
            task,
            model_name=name,
            fingerprint=fp,
            cache_dir=cache_root,
            batch_size=batch_size,
            device=device,
            num_workers=num_workers,
            k=k,
            memory_gb=memory_gb,
            progress=progress,
        )

    models = [(model, model_name, fingerprint)]
    if redundancy:
        for kind, path in (("image-only", image_only), ("text-only", text_only)):
            if path is not None:
                # a trained baseline is a model of its own: it keeps its own name ("image-only")
                loaded, loaded_fingerprint = _resolve(path, device)
                models.append((loaded, getattr(loaded, "name", "") or kind, loaded_fingerprint))
            else:
                models.append((_derive(model, kind), f"{model_name}-{kind}", fingerprint))

    fragment: dict[str, dict[str, dict[str, float]]] = {}
    results: dict[str, list[Any]] = {}
    for task in tasks:
        results[task.name] = [run(m, name, fp, task) for m, name, fp in models]
        for result in results[task.name]:
            fragment.setdefault(task.name, {})[result.model_name] = result.metrics
    if benchmark == "fashioniq" and tasks:
        for _, name, _ in models:
            per_category = [fragment[t.name][name] for t in tasks]
            if all("avg" in m for m in per_category):
                mean = {k: v for k, v in mean_metrics(per_category).items() if k != "queries"}
                mean["queries"] = sum(m["queries"] for m in per_category)
                fragment.setdefault(f"fashioniq/{split}", {})[name] = mean

    roots = (data_root, image_root)
    summaries = _redundancy(results, roots, benchmark, split, redundancy_ks) if redundancy else {}
    if out_dir is not None and world()[0] == 0:
        _write_outputs(Path(out_dir), fragment, results, summaries, results_file, pictures)
    return Evaluation(fragment, results, summaries)


def _resolve(model_or_checkpoint: Any, device: str) -> tuple[Any, str | None]:
    from coir.eval.encode import checkpoint_fingerprint

    if isinstance(model_or_checkpoint, (str, Path)):
        return load_model(model_or_checkpoint, device), checkpoint_fingerprint(model_or_checkpoint)
    return model_or_checkpoint.to(device), None


def _derive(model: Any, kind: str) -> Any:
    from coir.pipeline.models.registry import derive_baseline

    return derive_baseline(model, kind)


def _redundancy(
    results: dict[str, list[Any]], roots: Sequence[Any], benchmark: str, split: str, ks: Sequence[int]
) -> dict[str, Any]:
    from coir.eval.redundancy import compare_with_truth, labels_at, load_truth, redundancy_summary, truth_path

    summaries = {}
    for name, (full, image, text) in results.items():
        summary = redundancy_summary(
            full.ranking.target_rank, image.ranking.target_rank, text.ranking.target_rank, ks
        )
        category = name.split("/")[0].split("-", 1)[1] if benchmark == "fashioniq" else None
        path = truth_path(roots, benchmark, split, category)
        keys = [q.key for q in full.task.queries]
        for k in sorted({1, *ks}):  # per query: which modality alone solves it within the top k
            summary[f"labels@{k}"] = dict(
                zip(keys, labels_at(image.ranking.target_rank, text.ranking.target_rank, k), strict=True)
            )
        labels = list(summary["labels@1"].values())
        if path is not None:
            summary["truth"] = {"file": str(path), "k": 1} | compare_with_truth(
                [q.key for q in full.task.queries], labels, load_truth(path)
            )
        summaries[name] = summary
    return summaries


def _write_outputs(
    out: Path,
    fragment: dict[str, Any],
    results: dict[str, list[Any]],
    summaries: dict[str, Any],
    results_file: str | Path | None,
    pictures: bool,
) -> None:
    from coir.common.atomic import write_bytes_atomic
    from coir.common.json_io import write_json_atomic
    from coir.eval.redundancy import redundancy_markdown
    from coir.eval.report import retrieval_grid, retrieval_html, write_markdown
    from coir.eval.submission import write_cirr_submissions

    out.mkdir(parents=True, exist_ok=True)
    merged = write_results(results_file or out / "results.json", fragment)
    write_markdown(out / "results.md", merged)
    for task_results in results.values():
        for result in task_results:
            stem = _file_stem(result.task.name, result.model_name)
            if result.task.benchmark == "cirr":
                write_cirr_submissions(result, out / "submissions", result.model_name)
            if pictures and result is task_results[0]:
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

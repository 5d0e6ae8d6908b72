"""The zero-shot report's outputs: one table (a row per benchmark task and metric, a column per model
row), the protocol of each benchmark, results.json (merged, the same schema as `coir eval`'s) and
results.md, and a picture of the top 5 of a few queries per task (eval/report.py's retrieval grid)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from coir.eval.benchmarks import get_benchmark
from coir.eval.report import pick_queries, retrieval_grid, write_results
from coir.eval.zeroshot import SPLIT, ZeroShotReport

log = logging.getLogger(__name__)

PICTURE_QUERIES = 4  # queries drawn per task (failures first)
PICTURE_TOP = 5


def _cell(value: Any) -> str:
    return "" if value is None else f"{float(value):.2f}"


def table_keys(report: ZeroShotReport) -> list[tuple[str, str, str]]:
    """(benchmark, results.json key, label) in table order: each task, then the benchmark's summary
    row when it has one (FashionIQ: the mean over the categories)."""
    keys = []
    for name in report.roots:
        tasks = [t for t, results in report.task_results.items() if results[0].task.benchmark == name]
        keys += [(name, task, task) for task in tasks]
        headline = get_benchmark(name).headline(SPLIT)
        if headline not in tasks and headline in report.results:
            keys.append((name, headline, f"{headline} (mean)"))
    return keys


def zero_shot_table(report: ZeroShotReport) -> str:
    lines = ["| benchmark | metric | " + " | ".join(report.rows) + " |"]
    lines.append("| --- | --- |" + " ---: |" * len(report.rows))
    for name, key, label in table_keys(report):
        for metric in get_benchmark(name).report_metrics:
            cells = [_cell(report.results[key].get(row, {}).get(metric)) for row in report.rows]
            lines.append(f"| {label} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def protocol_lines(report: ZeroShotReport) -> list[str]:
    """Per task: its size and the protocol settings recorded in its rows (the strings of its metrics)."""
    lines = []
    for task_name, results in report.task_results.items():
        task, metrics = results[0].task, results[0].metrics
        settings = ", ".join(f"{k} {v!r}" for k, v in metrics.items() if isinstance(v, str))
        size = f"{len(task.queries)} queries, {len(task.gallery_paths)} gallery images"
        lines.append(f"- {task_name}: {size}" + (f"; {settings}" if settings else ""))
    return lines


def report_markdown(report: ZeroShotReport, pictures: list[Path] | None = None) -> str:
    model = report.rows[0]
    parts = [f"### zero-shot · {model} · {report.checkpoint}", "", zero_shot_table(report)]
    parts += ["protocol (each recorded in its rows of results.json):", *protocol_lines(report)]
    if report.notes:
        parts += ["", "notes:", *(f"- {note}" for note in report.notes)]
    if pictures:
        parts += ["", f"top {PICTURE_TOP} of {model} (green: a true target):"]
        parts += [f"![{p.stem}]({p.name})" for p in pictures]
    return "\n".join(parts) + "\n"


def write_report(
    report: ZeroShotReport, out: str | Path, results: str | Path | None = None, pictures: bool = True
) -> dict[str, Any]:
    """<out>/results.json (or `results`, merged), <out>/results.md and, with `pictures`, a PNG per
    task of the model's top 5 for a few queries; the results appended to the checkpoint's provenance
    card when it has one. Returns the merged results."""
    from coir.common.atomic import write_bytes_atomic
    from coir.pipeline.card import append_evaluation

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    merged = write_results(results or out / "results.json", report.results)
    drawn = []
    if pictures:
        for task_name, task_results in report.task_results.items():
            result = task_results[0]
            path = out / f"top{PICTURE_TOP}-{task_name.replace('/', '-')}-{result.model_name}.png"
            drawn.append(retrieval_grid(result, path, pick_queries(result, PICTURE_QUERIES), top=PICTURE_TOP))
    write_bytes_atomic(out / "results.md", report_markdown(report, drawn).encode())
    log.info("wrote %s", out)
    entry = {
        "report": "zero-shot",
        "split": SPLIT,
        "data_roots": {name: str(Path(root).resolve()) for name, (root, _) in report.roots.items()},
        "out": str(out.resolve()),
        "results": report.results,
    }
    if append_evaluation(report.checkpoint, entry) is not None:
        log.info("appended the report to %s's provenance card", report.checkpoint)
    return merged

"""Reports: results.json (merged, locked), a markdown table, a retrieval picture and an HTML page.

results.json schema: {"<benchmark>/<split>": {"<model>": {"<metric>": value}}}.
"""

from __future__ import annotations

import contextlib
import fcntl
import html
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from coir.common.atomic import atomic_path, write_bytes_atomic
from coir.common.errors import DataFormatError
from coir.common.json_io import load_json, write_json_atomic

METRIC_ORDER = (
    *("mAP@5", "mAP@10", "mAP@25", "mAP@50"),
    *("R@1", "R@5", "R@10", "R@25", "R@50", "Rs@1", "Rs@2", "Rs@3", "avg"),
    *("softR@1", "softR@5", "softR@10", "softR@50", "softRs@1", "softRs@2", "softRs@3", "queries"),
)
Results = dict[str, dict[str, dict[str, float]]]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside `path`, so parallel jobs (a SLURM sweep) merge without losing entries."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_results(path: str | Path) -> Results:
    path = Path(path)
    if not path.is_file():
        return {}
    data = load_json(path, "results file")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DataFormatError(path, 'expected {"<benchmark>/<split>": {"<model>": {"<metric>": value}}}')
    return data


def write_results(path: str | Path, fragment: Mapping[str, Mapping[str, Mapping[str, float]]]) -> Results:
    """Merge `fragment` into the results file: a (benchmark/split, model) entry is replaced, every
    other entry is kept. Returns the merged content."""
    path = Path(path)
    with _locked(path):
        merged = read_results(path)
        for task, models in fragment.items():
            entry = merged.setdefault(task, {})
            for model, metrics in models.items():
                entry[model] = {k: _plain(v) for k, v in metrics.items()}
        write_json_atomic(path, merged, indent=2)
    return merged


def _plain(value: Any) -> Any:
    if isinstance(value, (bool, int, str)):  # str: a protocol setting recorded beside the numbers
        return value
    return round(float(value), 4)


def _metric_key(metric: str) -> tuple[int, str]:
    """Known metrics in METRIC_ORDER, then the others by name (per-aspect ones: "mAP@10[negation]")."""
    return (METRIC_ORDER.index(metric), metric) if metric in METRIC_ORDER else (len(METRIC_ORDER), metric)


def results_markdown(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """One table per benchmark/split: a row per model, a column per metric."""
    blocks = []
    for task in sorted(results):
        models = results[task]
        metrics = sorted({m for values in models.values() for m in values}, key=_metric_key)
        lines = [f"### {task}", "", "| model | " + " | ".join(metrics) + " |"]
        lines.append("| --- |" + " ---: |" * len(metrics))
        for model, values in models.items():
            cells = [_format(values.get(m)) for m in metrics]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not float(value).is_integer():
        return f"{value:.2f}"
    return str(int(value)) if isinstance(value, (int, float)) else str(value)


def write_markdown(path: str | Path, results: Mapping[str, Any]) -> Path:
    return write_bytes_atomic(path, results_markdown(results).encode())


# ---------------------------------------------------------------- retrieval picture


def pick_queries(result: Any, n: int) -> list[int]:
    """Failures first (target not at rank 1), then successes, in query order; at most n."""
    ranks = result.ranking.target_rank
    failures = [i for i in range(len(ranks)) if ranks[i] != 0]
    successes = [i for i in range(len(ranks)) if ranks[i] == 0]
    return (failures + successes)[:n]


def retrieval_grid(
    result: Any, path: str | Path, queries: Sequence[int] | None = None, top: int = 5, cell: int = 96
):
    """PNG: one row per query: the reference with its text, the top results (the target outlined in
    green, the others in grey) and, last, the target itself."""
    from PIL import Image, ImageDraw

    queries = list(queries if queries is not None else pick_queries(result, 6))
    task = result.task
    text_width = cell * 2
    pad = 6
    width = cell + text_width + (top + 1) * (cell + pad) + 3 * pad
    height = max(1, len(queries)) * (cell + 2 * pad)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for row, i in enumerate(queries):
        query = task.queries[i]
        y = row * (cell + 2 * pad) + pad
        canvas.paste(_thumb(query.reference_path, cell), (pad, y))
        draw.multiline_text((cell + 2 * pad, y), _wrap(query.text, 30, 6), fill="black")
        rank = int(result.ranking.target_rank[i])
        draw.text(
            (cell + 2 * pad, y + cell - 12), f"target rank: {rank + 1 if rank >= 0 else '-'}", fill="blue"
        )
        x0 = cell + text_width + pad
        for j, name in enumerate(result.top_names(i, top)):
            x = x0 + j * (cell + pad)
            canvas.paste(_thumb(task.gallery_paths[task.index_of(name)], cell - 6), (x + 3, y + 3))
            hit = task.is_hit(query, name)
            draw.rectangle(
                [x, y, x + cell - 1, y + cell - 1], outline="#00b000" if hit else "#bbbbbb", width=3
            )
        target = task.index_of(query.target)
        if target >= 0:  # the target itself, after a gap, so failures show what was wanted
            x = x0 + top * (cell + pad) + 2 * pad
            canvas.paste(_thumb(task.gallery_paths[target], cell - 6), (x + 3, y + 3))
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], outline="#00b000", width=3)
            draw.text((x + 5, y + cell - 16), "target", fill="#00b000")
    with atomic_path(path, fsync=False) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)


def _thumb(path: Path, size: int) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB").resize((size, size))
    except OSError:
        return Image.new("RGB", (size, size), "#ff00ff")


def _wrap(text: str, width: int, lines: int) -> str:
    words, out, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > width and line:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    out.append(line)
    return "\n".join(out[:lines])


# ---------------------------------------------------------------- HTML page


def retrieval_html(result: Any, path: str | Path, limit: int = 200, top: int = 10) -> Path:
    """A static page of queries (failures first) with their top-k; images linked relative to the page."""
    path = Path(path)
    base = path.parent.resolve()

    def src(p: Path) -> str:
        return html.escape(os.path.relpath(Path(p).resolve(), base))

    task = result.task
    rows = []
    for i in pick_queries(result, limit):
        query = task.queries[i]
        rank = int(result.ranking.target_rank[i])
        cells = []
        for name in result.top_names(i, top):
            style = "hit" if task.is_hit(query, name) else ""
            cells.append(
                f'<td class="{style}"><img src="{src(task.gallery_paths[task.index_of(name)])}">'
                f"<br>{html.escape(name)}</td>"
            )
        target = task.index_of(query.target)
        if target >= 0 and query.target not in result.top_names(i, top):
            cells.append(
                f'<td class="hit"><img src="{src(task.gallery_paths[target])}"><br>target '
                f"{html.escape(str(query.target))}</td>"
            )
        rows.append(
            f'<tr><td><img src="{src(query.reference_path)}"><br>{html.escape(query.reference)}</td>'
            f"<td class=text>{html.escape(query.text)}<br><small>query {html.escape(query.key)} · target "
            f"{html.escape(str(query.target))} · rank {rank + 1 if rank >= 0 else '-'}</small></td>"
            + "".join(cells)
            + "</tr>"
        )
    metrics = " · ".join(f"{name} {_format(value)}" for name, value in result.metrics.items())
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(task.name)} · {html.escape(result.model_name)}</title>
<style>body{{font-family:sans-serif}} td{{vertical-align:top;font-size:11px;padding:3px}}
img{{width:96px;height:96px;object-fit:cover;border:3px solid #ddd}} .hit img{{border-color:#0b0}}
td.text{{max-width:220px;font-size:13px}}</style></head><body>
<h2>{html.escape(task.name)} · {html.escape(result.model_name)}</h2>
<p>{html.escape(metrics)}</p>
<p>{len(rows)} of {len(task.queries)} queries, failures first; green = the target (shown last when it
is not in the top {top}).</p>
<table>{"".join(rows)}</table></body></html>
"""
    return write_bytes_atomic(path, page.encode())

"""`coir demo` end to end on the tiny world: every stage runs through the real code paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coir.datasets.lasco_files import read_lasco_triplets

MODELS = {"case", "image-only", "text-only"}
ZERO_SHOT_ROWS = MODELS | {"case-sum"}  # the trained baselines, and the sum derived from CASE


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("demo")
    command = [sys.executable, "-m", "coir.pipeline.cli", "demo", "--out", str(out), "--scale", "tiny"]
    command += ["--steps", "8", "--baseline-steps", "4", "--batch-size", "16"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result


def test_results_follow_the_schema_for_every_benchmark_and_model(demo) -> None:
    out, _ = demo
    results = json.loads((out / "results.json").read_text())
    assert {"lasco/val", "cirr/val", "circo/val", "fashioniq/val", "fashioniq-dress/val"} <= set(results)
    assert set(results["lasco/val"]) == MODELS
    for key in ("cirr/val", "circo/val", "fashioniq/val"):  # the zero-shot report's rows
        assert set(results[key]) == ZERO_SHOT_ROWS, key
    circo_queries = len(json.loads((out / "world" / "circo" / "annotations" / "val.json").read_text()))
    for metrics in results["circo/val"].values():
        assert metrics["queries"] == circo_queries and metrics["reference"] == "removed"
        assert all(0 <= metrics[f"mAP@{k}"] <= 100 for k in (5, 10, 25, 50))
    for models in results.values():
        for metrics in models.values():
            recalls = [metrics[k] for k in ("R@1", "R@5", "R@10", "R@50") if k in metrics]
            assert recalls == sorted(recalls) and all(0 <= r <= 100 for r in recalls)
    queries = len(read_lasco_triplets(out / "lasco" / "val" / "lasco_val.json"))
    assert all(results["lasco/val"][m]["queries"] == queries for m in MODELS)


def test_every_stage_left_its_artefacts(demo) -> None:
    out, result = demo
    for name in MODELS:
        assert (out / "models" / name / "export" / "model.safetensors").is_file()
    assert (out / "eval" / "redundancy.json").is_file()
    assert "| case |" in result.stdout  # the printed LaSCo table
    # the one zero-shot table: a column per row of the report, CIRR and CIRCO metrics among its rows
    assert "| benchmark | metric | case | image-only | text-only | case-sum |" in result.stdout
    assert "| cirr/val | Rs@1 |" in result.stdout and "| circo/val | mAP@10 |" in result.stdout
    assert (out / "zeroshot" / "results.md").is_file() and list(
        (out / "zeroshot").glob("top5-circo-val-*.png")
    )
    inspect = subprocess.run(
        [sys.executable, "-m", "coir.pipeline.cli", "data", "inspect", str(out / "lasco" / "train")],
        capture_output=True,
        text=True,
    )
    assert inspect.returncode == 0, inspect.stdout + inspect.stderr

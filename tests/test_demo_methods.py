"""`coir demo --methods`: the methods comparison through the real commands (one short method end to end;
each method's learning is proven by its own tests/test_*_learns.py), its table and its argument check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coir.common.errors import ConfigError
from coir.launch.methods_demo import METHODS, comparison_table, parse_methods


def _demo(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "coir.pipeline.cli", "demo", "--methods", "tirg", "--out", str(out)]
    command += ["--scale", "tiny", "--steps", "2", "--batch-size", "8", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_one_method_end_to_end_then_reused(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    tasks = {"fashioniq/val", "fashioniq-dress/val", "shoes/test", "fashion200k/test"}
    assert tasks <= set(results)
    for task in tasks:
        assert set(results[task]) == {"tirg", "tirg untrained"}, task
    meta = json.loads((tmp_path / "models" / "tirg" / "train" / "export" / "coir_model.json").read_text())
    assert meta["config"]["model"]["image_size"] == 32  # the demo's budget reached the recipe
    # the trained model took the demo's steps, from the TIRG vocabulary the demo made
    vocab = json.loads((tmp_path / "inputs" / "vocabulary_tirg.json").read_text())
    assert vocab["tokenizer"] == "tirg"
    table = (tmp_path / "results.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| tirg |"))
    shoes = results["shoes/test"]
    assert f"{shoes['tirg untrained']['R@1']:.1f} -> {shoes['tirg']['R@1']:.1f}" in row
    # trained on the three training splits together
    command = next(line for line in first.stdout.splitlines() if "coir train" in line)
    shards = command.split("data.shards=[")[1].split("]")[0].split(",")
    assert sorted(Path(s).parent.name.split("_")[0] for s in shards) == ["fashion200k", "fashioniq", "shoes"]

    again = _demo(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reusing" in again.stdout and "coir train" not in again.stdout
    assert json.loads((tmp_path / "results.json").read_text()) == results


def test_method_list_is_checked() -> None:
    from importlib.metadata import entry_points

    # every registered model family is in the demo (CASE for the blip family)
    families = {e.name for e in entry_points(group="coir.models")} - {"blip"}
    assert families | {"case"} == set(METHODS)
    assert [m.name for m in parse_methods("all")] == list(METHODS)
    assert [m.name for m in parse_methods("tirg, artemis")] == ["tirg", "artemis"]
    with pytest.raises(ConfigError, match="'nope'.*artemis"):
        parse_methods("tirg,nope")
    with pytest.raises(ConfigError, match="empty"):
        parse_methods(",")


def test_table_pairs_each_methods_untrained_and_trained_scores() -> None:
    results = {
        "fashioniq/val": {"a": {"R@10": 40.0, "R@50": 80.0}, "a untrained": {"R@10": 10.0, "R@50": 30.0}},
        "fashion200k/test": {"a": {"R@50": 90.0}, "a untrained": {"R@50": 60.0}},
        "shoes/test": {"a": {"R@1": 41.25}, "a untrained": {"R@1": 12.5}},
    }
    methods = parse_methods("tirg")
    assert _cells(comparison_table({"fashioniq/val": {}}, methods)) == ["tirg"] + [""] * 5  # not zeros
    renamed = [type(methods[0])("a", methods[0].recipe, methods[0].template)]
    cells = _cells(comparison_table(results, renamed))
    assert cells == ["a", "10.0 -> 40.0", "12.5 -> 41.2", "", "", "60.0 -> 90.0"]


def _cells(table: str) -> list[str]:
    return [cell.strip() for cell in table.splitlines()[-1].strip("|").split("|")]

"""The tiny synthetic world, built once per test session (shared by tests/test_synth_*.py; each
file declares its own `tiny_world` fixture that calls built_world)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coir.datasets.synth.build import build_world

_BUILT: dict[str, Path] = {}


def built_world(tmp_path_factory: pytest.TempPathFactory, seed: int = 0) -> Path:
    """Build the tiny world for `seed` once per session; later calls return the same folder."""
    key = f"seed{seed}"
    if key not in _BUILT:
        out = tmp_path_factory.mktemp(f"synth-tiny-{key}")
        build_world(out, seed=seed, scale="tiny", progress=False)
        _BUILT[key] = out
    return _BUILT[key]


def load(path: Path):
    return json.loads(path.read_text())

"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"

# Tests run on 2 cores next to each other; one BLAS thread per process keeps multi-process tests fair.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real annotation files (CIRR val, FashionIQ val, LaSCo val corpus, VQA question types)."""
    if not REAL_DATA.is_dir():
        pytest.fail(f"real annotation files not found at {REAL_DATA} (shared/ must sit beside the repo)")
    return REAL_DATA


@pytest.fixture(autouse=True)
def _restore_environment():
    """Code under test may export rank variables (RANK, WORLD_SIZE, MASTER_* …) into os.environ;
    a later test would then see a multi-rank job. Every test starts from the same environment."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)

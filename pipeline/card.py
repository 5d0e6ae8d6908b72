"""The provenance card, coir_card.json, beside every export, training checkpoint and converted checkpoint.

{"format", "kind" (export | checkpoint | converted), "model_name", "created", "code" (coir version + git
commit), "config" (the run config), "sources" ({config key: identity of the local file or folder it names}:
weights, tokenizer, vocabulary), "data" (per shard folder: its manifest's sha256 and the sha256 of each
training shard as the manifest lists it), "training" (step, samples seen), "evaluations" (appended by
`coir eval`, one entry per run)}. "code" also says whether tracked files had uncommitted changes ("dirty").

A file is identified by its sha256 when it is at most HASH_LIMIT bytes, else by size + mtime; each
identity says which ("method").
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from coir.common.json_io import load_json, write_json_atomic

CARD = "coir_card.json"
FORMAT = "coir-card/1"
HASH_LIMIT = 4 << 30  # a real ViT-B / BERT-base checkpoint (~1 GB) is hashed; larger files are not
#: files of a weight or tokenizer folder that identify it (the rest: optimizer state, logs)
IDENTIFYING = (".safetensors", ".bin", ".pth", ".pt", ".json", ".txt", ".model", ".npy")


def code_state() -> dict[str, Any]:
    """coir version and git commit, and whether the checkout had uncommitted changes to tracked files."""
    import subprocess

    from coir.datasets.shards.manifest import code_version

    state: dict[str, Any] = dict(code_version())
    if state.get("git_commit"):
        try:
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=Path(__file__).resolve().parent,
                capture_output=True,
                text=True,
                timeout=10,
            )
            state["dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            state["dirty"] = None
    return state


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def file_identity(path: str | Path) -> dict[str, Any]:
    from coir.datasets.shards.writer import sha256_file

    path = Path(path)
    stat = path.stat()
    if stat.st_size <= HASH_LIMIT:
        return {"bytes": stat.st_size, "method": "sha256", "sha256": sha256_file(path)}
    mtime = datetime.datetime.fromtimestamp(stat.st_mtime, datetime.timezone.utc).isoformat()
    return {"bytes": stat.st_size, "method": "size+mtime", "mtime": mtime}


def source_identity(path: str | Path) -> dict[str, Any]:
    """A weight / tokenizer file or folder: its path and the identity of each identifying file in it
    (one level of subfolders, e.g. an export's tokenizer/)."""
    path = Path(path)
    out: dict[str, Any] = {"path": str(path.resolve())}
    if path.is_file():
        return out | file_identity(path)
    if not path.is_dir():
        return out | {"missing": True}
    files = sorted(p for p in [*path.iterdir(), *path.glob("*/*")] if p.is_file() and p.suffix in IDENTIFYING)
    out["files"] = {str(p.relative_to(path)): file_identity(p) for p in files if p.name != CARD}
    return out


def data_identity(shards: list[str]) -> list[dict[str, Any]]:
    """Per shard folder: its manifest.json's sha256 and the sha256 the manifest lists for each training
    shard used (shards without a manifest: their own identity)."""
    by_folder: dict[Path, list[Path]] = {}
    for shard in shards:
        by_folder.setdefault(Path(shard).resolve().parent, []).append(Path(shard).resolve())
    out = []
    for folder, paths in sorted(by_folder.items()):
        manifest = folder / "manifest.json"
        listed: dict[str, Any] = {}
        entry: dict[str, Any] = {"folder": str(folder)}
        if manifest.is_file():
            entry["manifest"] = file_identity(manifest)
            data = load_json(manifest, "shard manifest")
            for item in data.get("shards", []) if isinstance(data, dict) else []:
                if isinstance(item, dict) and "name" in item:
                    listed[str(item["name"])] = item.get("sha256")
        entry["shards"] = {
            p.name: (
                {"method": "manifest", "sha256": listed[p.name]} if listed.get(p.name) else file_identity(p)
            )
            for p in paths
        }
        out.append(entry)
    return out


def build_card(
    *,
    kind: str,
    model_name: str | None = None,
    config: Mapping[str, Any] | None = None,
    sources: Mapping[str, str | None] | None = None,
    shards: list[str] | None = None,
    training: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "kind": kind,
        "model_name": model_name,
        "created": _now(),
        "code": code_state(),
        "config": dict(config) if config is not None else None,
        "sources": {k: source_identity(v) for k, v in (sources or {}).items() if v},
        "data": data_identity(shards) if shards else [],
        "training": dict(training) if training is not None else None,
        "evaluations": [],
        **(extra or {}),
    }


def write_card(folder: str | Path, card: Mapping[str, Any]) -> Path:
    """Write folder/coir_card.json atomically, keeping the evaluations an earlier card of it holds."""
    path = Path(folder) / CARD
    with _locked(path):
        previous = read_card(folder)
        card = dict(card)
        if previous and previous.get("evaluations"):
            card["evaluations"] = list(previous["evaluations"]) + list(card.get("evaluations") or [])
        write_json_atomic(path, card, indent=1)
    return path


def read_card(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / CARD
    if not path.is_file():
        return None
    card = load_json(path, "provenance card")
    return card if isinstance(card, dict) else None


def append_evaluation(folder: str | Path, entry: Mapping[str, Any]) -> Path | None:
    """Append one evaluation to folder's card (read-modify-write under a lock, written atomically);
    None when the folder has no card."""
    path = Path(folder) / CARD
    if not path.is_file():
        return None
    with _locked(path):
        card = read_card(folder) or {}
        card.setdefault("evaluations", []).append({"time": _now(), **entry})
        write_json_atomic(path, card, indent=1)
    return path


def model_name_of(folder: str | Path) -> str | None:
    card = read_card(folder) if Path(folder).is_dir() else None
    return str(card["model_name"]) if card and card.get("model_name") else None


@contextlib.contextmanager
def _locked(card_path: Path) -> Iterator[None]:
    """Serialise writers of one card (e.g. evaluations of several benchmarks running at once): an
    exclusive lock on its folder, so no lock file is left beside it."""
    card_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(card_path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock

"""Finalize a shard folder (merge part files into manifest.json, index.parquet, errors.parquet) and
read or verify a finished one.

Nothing that depends on how the build ran (number of workers or tasks, timings, host) goes into
these files, so a build split over any number of processes gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from coir.common.atomic import write_bytes_atomic
from coir.common.errors import CoirError, DataFormatError, MissingInputError
from coir.common.json_io import write_json_atomic
from coir.datasets.shards.plan import shard_name
from coir.datasets.shards.spec import ERROR_COLUMNS, ERRORS, INDEX, MANIFEST, PARTS, PLAN
from coir.datasets.shards.writer import TMP_MARK, sha256_file

FORMAT = "coir-shards/1"
_ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}


@cache
def code_version() -> dict[str, str | None]:
    """The coir version and, when the package sits in a git checkout with commits, the commit."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        coir_version = version("coir")
    except PackageNotFoundError:
        coir_version = None
    commit = None
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if result.returncode == 0:
            commit = result.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"coir": coir_version, "git_commit": commit}


def _parquet_bytes(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> bytes:
    schema = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in columns])
    table = pa.Table.from_pylist(rows, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def finalize_folder(folder: str | Path) -> dict[str, Any]:
    """Merge the part files of a fully written shard folder; returns the manifest.

    Raises CoirError naming the missing shards when some task has not finished its range.
    Finalizing an already finalized folder just returns its manifest. manifest.json is written last
    (after index and errors), so when it exists the folder is finished: a `_parts/` beside it is the
    remains of a clean-up that was killed, and is removed.
    """
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        shutil.rmtree(folder / PARTS, ignore_errors=True)
        return read_manifest(folder)
    plan_path = folder / PARTS / PLAN
    if not plan_path.is_file():
        raise MissingInputError(plan_path, "build plan (was the build started in this folder?)")
    plan = json.loads(plan_path.read_bytes())
    kind, count = plan["kind"], plan["num_shards"]
    names = [shard_name(kind, i) for i in range(count)]
    missing = [n for n in names if not (folder / n).is_file() or not (folder / PARTS / f"{n}.json").is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CoirError(
            f"{folder}: {len(missing)} of {count} shards are not written yet ({shown}); "
            "run the missing tasks (same arguments) before finalizing"
        )
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = list(plan["errors"])
    shards = []
    for name in names:
        part = json.loads((folder / PARTS / f"{name}.json").read_bytes())
        size = (folder / name).stat().st_size
        if size != part["bytes"]:
            raise CoirError(
                f"{folder / name}: size {size} differs from the {part['bytes']} bytes written; "
                "delete it and rerun the build"
            )
        rows.extend(part["rows"])
        errors.extend(part["errors"])
        shards.append(
            {"name": name, "samples": part["samples"], "bytes": part["bytes"], "sha256": part["sha256"]}
        )
    remove_leftover_temps(folder)
    columns = [("key", "string"), ("shard", "string")] + [tuple(c) for c in plan["index_columns"]]
    write_bytes_atomic(folder / INDEX, _parquet_bytes(rows, columns))
    write_bytes_atomic(folder / ERRORS, _parquet_bytes(errors, [(c, "string") for c in ERROR_COLUMNS]))
    manifest = {
        "format": FORMAT,
        "kind": kind,
        **{k: v for k, v in plan["meta"].items() if k not in ("report",)},
        "num_samples": len(rows),
        "num_shards": count,
        "shard_size": plan["shard_size"],
        "num_errors": len(errors),
        "errors_by_reason": dict(sorted(Counter(e["reason"] for e in errors).items())),
        "shards": shards,
        "report": plan["meta"].get("report", {}),
        "code_version": code_version(),
        "plan_sha256": hashlib.sha256(plan_path.read_bytes()).hexdigest(),
    }
    write_json_atomic(folder / MANIFEST, manifest, indent=1)
    shutil.rmtree(folder / PARTS)
    return manifest


def remove_leftover_temps(folder: Path) -> None:
    """Temp files of writers killed mid-way (shards, parts, manifest …): never part of the output."""
    for pattern in (f"*{TMP_MARK}*", ".*.tmp"):
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise MissingInputError(path, "shard manifest")
    try:
        manifest = json.loads(path.read_bytes())
    except json.JSONDecodeError as error:
        raise DataFormatError(path, f"invalid JSON: {error.msg}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataFormatError(path, f"not a coir shard manifest (format {FORMAT!r} expected)")
    return manifest


def verify_folder(folder: str | Path, progress: bool = False) -> list[str]:
    """Problems found (missing shard, size or sha256 mismatch), one line each; empty when sound."""
    from tqdm import tqdm

    folder = Path(folder)
    manifest = read_manifest(folder)
    problems = []
    for shard in tqdm(manifest["shards"], desc="verify", unit="shard", disable=not progress):
        path = folder / shard["name"]
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != shard["bytes"]:
            problems.append(f"{path}: size {path.stat().st_size} != {shard['bytes']} in the manifest")
        elif sha256_file(path) != shard["sha256"]:
            problems.append(f"{path}: sha256 mismatch")
    for name in (INDEX, ERRORS):
        if not (folder / name).is_file():
            problems.append(f"{folder / name}: missing")
    return problems


def read_index(folder: str | Path) -> pa.Table:
    return pq.read_table(Path(folder) / INDEX)


def read_errors(folder: str | Path) -> pa.Table:
    return pq.read_table(Path(folder) / ERRORS)

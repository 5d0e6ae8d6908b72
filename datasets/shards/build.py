"""Write the shards of a task's range, in one process or in `workers` processes.

Shards are independent units: a finished shard (final name present and its part file present) is
never rewritten, so a rerun after a crash or kill only writes what is missing. Each worker takes a
contiguous run of shards of every set, so the samples it sees share images and its cache of encoded
images (one per worker) serves most of them without decoding again.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import queue
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from coir.common import fields as shard_fields
from coir.common.atomic import write_bytes_atomic
from coir.common.errors import CoirError
from coir.common.json_io import dump_json
from coir.datasets.shards.images import MANIFEST_KEY as IMAGES_KEY
from coir.datasets.shards.images import EncodedImageCache, ImageEncoder, ImageProblem
from coir.datasets.shards.plan import shard_name, split_ranges, task_range
from coir.datasets.shards.spec import MANIFEST, PARTS, PLAN, SampleSpec, ShardSet, error_record
from coir.datasets.shards.writer import remove_stale_temps, write_shard


@dataclass(frozen=True)
class Unit:
    """One shard to write."""

    folder: str
    kind: str
    index: int
    samples: tuple[SampleSpec, ...]


def _plan_bytes(shard_set: ShardSet) -> bytes:
    return dump_json(shard_set.plan(), indent=1)


def prepare(shard_set: ShardSet) -> bool:
    """Create the folder and its plan; True when the set is already finalized with this plan."""
    return prepare_plan(shard_set.folder, _plan_bytes(shard_set))


def prepare_plan(folder: Path, plan: bytes) -> bool:
    """Create `folder` and its `_parts/plan.json` (the build's plan, as bytes); True when the folder
    is already finalized with this plan. CoirError when it holds a build (finished or partial) made
    with another plan."""
    manifest_path = folder / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_bytes())
        if manifest.get("plan_sha256") == hashlib.sha256(plan).hexdigest():
            return True
        raise CoirError(
            f"{folder} already holds a finished build made with other inputs or settings; "
            "use another --out or delete that folder"
        )
    plan_path = folder / PARTS / PLAN
    if plan_path.is_file() and plan_path.read_bytes() != plan:
        raise CoirError(
            f"{folder} holds a partial build made with other inputs or settings ({plan_path} differs); "
            "rerun with the original arguments, use another --out, or delete that folder"
        )
    if not plan_path.is_file():
        write_bytes_atomic(plan_path, plan)
    return False


def shard_done(shard_set: ShardSet, index: int) -> bool:
    return shard_set.shard_path(index).is_file() and shard_set.part_path(index).is_file()


def _sample_fields(sample: SampleSpec, cache: EncodedImageCache) -> dict[str, bytes]:
    fields = {name: cache.get(path) for name, path in sample.images}
    if sample.text is not None:
        fields[shard_fields.TEXT] = sample.text.encode()
    fields[shard_fields.META] = dump_json(sample.meta)
    return fields


def write_unit(unit: Unit, cache: EncodedImageCache) -> tuple[int, int]:
    """Write one shard and its part file; returns (samples written, samples skipped)."""
    folder = Path(unit.folder)
    name = shard_name(unit.kind, unit.index)
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []

    def encoded() -> Iterator[tuple[str, dict[str, bytes]]]:
        # streamed into the tar as they are made: a shard never sits whole in memory
        for sample in unit.samples:
            try:
                fields = _sample_fields(sample, cache)
            except ImageProblem as problem:
                errors.append(error_record(unit.kind, sample.key, problem.path, problem.reason, str(problem)))
                continue
            rows.append({"key": sample.key, "shard": name, **sample.row})
            yield sample.key, fields

    write_shard(folder / name, encoded(), before_rename=part_writer(folder, name, rows, errors))
    return len(rows), len(errors)


def part_writer(
    folder: Path, name: str, rows: list[dict[str, Any]], errors: list[dict[str, Any]]
) -> Callable[[str, int], None]:
    """write_shard's before_rename for shard `name`: its part file (index rows and error records, filled
    while the shard streams). The part goes first: a shard under its final name always has its part."""

    def write_part(sha: str, size: int) -> None:
        part = {
            "shard": name,
            "samples": len(rows),
            "sha256": sha,
            "bytes": size,
            "rows": rows,
            "errors": errors,
        }
        write_bytes_atomic(folder / PARTS / (name + ".json"), dump_json(part))

    return write_part


def _chunks(items: list[Unit], parts: int) -> list[list[Unit]]:
    return [[items[i] for i in r] for r in split_ranges(len(items), parts)]


def _paths(unit: Unit) -> set[str]:
    return {path for sample in unit.samples for _, path in sample.images}


def assign_workers(units_per_set: list[list[Unit]], workers: int) -> list[list[Unit]]:
    """Units per worker: contiguous chunks of the first set, then every unit of the other sets goes
    to the worker that already needs most of its images (so an image is encoded by one worker).
    Within a worker, units are ordered by their first image so the cache sees each image in one
    stretch."""
    per_worker: list[list[Unit]] = [[] for _ in range(workers)]
    needs: list[set[str]] = [set() for _ in range(workers)]
    first, *others = units_per_set
    for w, chunk in enumerate(_chunks(first, workers)):
        per_worker[w].extend(chunk)
        for unit in chunk:
            needs[w] |= _paths(unit)
    load = [sum(len(u.samples) for u in units) for units in per_worker]
    for units in others:
        for unit in units:
            paths = _paths(unit)
            w = max(range(workers), key=lambda i: (len(paths & needs[i]), -load[i], -i))
            per_worker[w].append(unit)
            needs[w] |= paths
            load[w] += len(unit.samples)
    for units in per_worker:
        units.sort(key=lambda u: min(_paths(u), default=""))
    return per_worker


def _worker(units: list[Unit], encoder: ImageEncoder, cache_bytes: int, out: Any, parent: int) -> None:
    cache = EncodedImageCache(encoder, cache_bytes)
    try:
        for unit in units:
            if os.getppid() != parent:  # the parent was killed: stop instead of running orphaned
                return
            written, skipped = write_unit(unit, cache)
            out.put(("shard", written, skipped))
        out.put(("stats", cache.encoded, cache.hits))
    except CoirError as error:  # the user's to fix (a full disk …): its message, not a traceback
        out.put(("user_error", str(error)))
        sys.exit(1)  # no traceback on stderr: the parent raises the message
    except BaseException:
        out.put(("error", traceback.format_exc()))
        raise


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="shard", dynamic_ncols=True)


def run_units(
    units_per_set: list[list[Unit]],
    encoder: ImageEncoder,
    workers: int = 1,
    cache_bytes: int = 512 << 20,
    progress: bool = True,
    desc: str = "shards",
) -> dict[str, int]:
    """Write every unit; each worker gets a contiguous chunk of every set (image reuse)."""
    total = sum(len(u) for u in units_per_set)
    stats = {
        "shards_written": 0,
        "samples_written": 0,
        "samples_skipped": 0,
        "images_encoded": 0,
        "image_cache_hits": 0,
    }
    if total == 0:
        return stats
    workers = max(1, min(workers, total))
    with _progress(total, progress, desc) as bar:
        if workers == 1:
            cache = EncodedImageCache(encoder, cache_bytes)
            for units in units_per_set:
                for unit in units:
                    written, skipped = write_unit(unit, cache)
                    _count(stats, written, skipped)
                    bar.update()
            stats["images_encoded"], stats["image_cache_hits"] = cache.encoded, cache.hits
            return stats
        for message in _run_processes(assign_workers(units_per_set, workers), encoder, cache_bytes):
            if message[0] == "shard":
                _count(stats, message[1], message[2])
                bar.update()
            else:
                stats["images_encoded"] += message[1]
                stats["image_cache_hits"] += message[2]
    return stats


def _count(stats: dict[str, int], written: int, skipped: int) -> None:
    stats["shards_written"] += 1
    stats["samples_written"] += written
    stats["samples_skipped"] += skipped


def _raise_failure(message: tuple) -> None:
    if message[0] == "user_error":
        raise CoirError(message[1])
    if message[0] == "error":
        raise RuntimeError(f"a shard worker failed:\n{message[1]}")


def _run_processes(per_worker: list[list[Unit]], encoder: ImageEncoder, cache_bytes: int) -> Iterator[tuple]:
    # fork: workers inherit the plan without pickling it, and callers need no __main__ guard
    context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    messages = context.Queue()
    processes = [
        context.Process(
            target=_worker, args=(units, encoder, cache_bytes, messages, os.getpid()), daemon=True
        )
        for units in per_worker
        if units
    ]
    try:
        for process in processes:
            process.start()
        while True:
            try:
                message = messages.get(timeout=0.2)
            except queue.Empty:
                if all(not p.is_alive() for p in processes):
                    break
                continue
            _raise_failure(message)
            yield message
        # drain what arrived between the last get and the exit of the workers
        while True:
            try:
                message = messages.get(timeout=0.05)
            except queue.Empty:
                break
            _raise_failure(message)
            yield message
        failed = [p.exitcode for p in processes if p.exitcode != 0]
        if failed:
            raise RuntimeError(f"shard workers exited with codes {failed}")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def build_sets(
    sets: list[ShardSet],
    encoder: ImageEncoder,
    task_index: int = 0,
    num_tasks: int = 1,
    workers: int = 1,
    cache_bytes: int = 512 << 20,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the shards of task `task_index` of `num_tasks` for every set; skip finished ones.
    Each set's manifest records how its images are stored (the encoder's settings)."""
    sets = [replace(s, meta={**s.meta, IMAGES_KEY: encoder.manifest()}) for s in sets]
    report: dict[str, Any] = {"task_index": task_index, "num_tasks": num_tasks, "sets": {}}
    units_per_set: list[list[Unit]] = []
    for shard_set in sets:
        finished = prepare(shard_set)
        own = task_range(shard_set.num_shards, task_index, num_tasks)
        if finished:
            pending: list[int] = []
        else:
            remove_stale_temps(shard_set.folder, [shard_set.shard_path(i).name for i in own])
            pending = [i for i in own if not shard_done(shard_set, i)]
        size = shard_set.shard_size
        units_per_set.append(
            [
                Unit(
                    str(shard_set.folder),
                    shard_set.kind,
                    i,
                    tuple(shard_set.samples[i * size : (i + 1) * size]),
                )
                for i in pending
            ]
        )
        report["sets"][shard_set.kind] = {
            "folder": str(shard_set.folder),
            "shards_total": shard_set.num_shards,
            "shards_in_range": [own.start, own.stop],
            "already_done": len(own) - len(pending),
            "to_write": len(pending),
        }
    report.update(run_units(units_per_set, encoder, workers, cache_bytes, progress))
    return report


__all__ = [
    "build_sets",
    "error_record",
    "part_writer",
    "prepare",
    "prepare_plan",
    "run_units",
    "shard_done",
    "write_unit",
]

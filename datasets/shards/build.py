"""Write the shards of a task's range, in one process or in `workers` processes.

Shards are independent units: a finished shard (final name present and its part file present) is
never rewritten, so a rerun after a crash or kill only writes what is missing. A task works in two
phases: every distinct image its pending shards use is encoded once, the images split evenly over the
workers, into a scratch folder (datasets/shards/encoded_images.py); then the workers write the shards,
each a contiguous run of about the same number of samples, reading the encoded bytes back.
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
from coir.datasets.shards.encoded_images import (
    SCRATCH,
    EncodedImages,
    ReencodedImages,
    distinct_paths,
    drop_scratch,
    encode_part,
    new_scratch,
    parts,
)
from coir.datasets.shards.images import MANIFEST_KEY as IMAGES_KEY
from coir.datasets.shards.images import ImageEncoder, ImageProblem
from coir.datasets.shards.plan import shard_name, task_range
from coir.datasets.shards.spec import MANIFEST, PARTS, PLAN, SampleSpec, ShardSet, error_record
from coir.datasets.shards.writer import remove_stale_temps, write_shard

Images = EncodedImages | ReencodedImages  # where a shard writer gets each image's bytes


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


def _sample_fields(sample: SampleSpec, images: Images) -> dict[str, bytes]:
    fields = {name: images.get(path) for name, path in sample.images}
    if sample.text is not None:
        fields[shard_fields.TEXT] = sample.text.encode()
    fields[shard_fields.META] = dump_json(sample.meta)
    return fields


def write_unit(unit: Unit, images: Images) -> tuple[int, int]:
    """Write one shard and its part file; returns (samples written, samples skipped)."""
    folder = Path(unit.folder)
    name = shard_name(unit.kind, unit.index)
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []

    def encoded() -> Iterator[tuple[str, dict[str, bytes]]]:
        # streamed into the tar as they are made: a shard never sits whole in memory
        for sample in unit.samples:
            try:
                fields = _sample_fields(sample, images)
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


def balanced_ranges(weights: list[int], parts: int) -> list[range]:
    """Contiguous index ranges of `weights`, one per part, cut where the running total passes each
    part's share (empty ranges dropped)."""
    total, cuts, running = sum(weights), [0], 0
    for index, weight in enumerate(weights):
        running += weight
        if len(cuts) < parts and running * parts >= total * len(cuts):
            cuts.append(index + 1)
    cuts.append(len(weights))
    return [range(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def _image_paths(unit: Unit) -> list[str]:
    return [path for sample in unit.samples for _, path in sample.images]


def _write_worker(units: list[Unit], images: Images, out: Any, parent: int) -> None:
    for unit in units:
        if os.getppid() != parent:  # the parent was killed: stop instead of running orphaned
            return
        written, skipped = write_unit(unit, images)
        out.put(("shard", written, skipped))


def _encode_worker(
    paths: list[str], encoder: ImageEncoder, folder: Path, number: int, out: Any, parent: int
) -> None:
    for entries in encode_part(paths, encoder, folder, number):
        if os.getppid() != parent:
            return
        out.put(("images", entries))


def _guarded(target: Callable[..., None], *args: Any) -> None:
    """`target(*args)` in a worker process (args end with the queue and the parent's pid): a CoirError
    (a full disk …) travels as its message, anything else as its traceback; the worker exits non-zero."""
    out = args[-2]
    try:
        target(*args)
        out.put(("done",))
    except CoirError as error:  # the user's to fix: its message, not a traceback
        out.put(("user_error", str(error)))
        sys.exit(1)  # no traceback on stderr: the parent raises the message
    except BaseException:
        out.put(("error", traceback.format_exc()))
        raise


def _progress(total: int, enabled: bool, desc: str, unit: str = "shard"):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit=unit, dynamic_ncols=True)


def _encode_all(
    units: list[Unit], encoder: ImageEncoder, workers: int, scratch: Path, progress: bool
) -> EncodedImages:
    """Phase 1: every distinct image of `units` encoded once into `scratch` (see encoded_images.py)."""
    new_scratch(scratch)
    paths = distinct_paths(_image_paths(unit) for unit in units)
    index: dict[str, Any] = {}
    try:
        with _progress(len(paths), progress, "images", "image") as bar:
            jobs = [(part, encoder, scratch, number) for number, part in enumerate(parts(paths, workers))]
            if len(jobs) == 1:
                messages: Iterator[tuple] = (("images", entries) for entries in encode_part(*jobs[0]))
            else:
                messages = _run_processes(_encode_worker, jobs)
            for message in messages:
                index.update(message[1])
                bar.update(len(message[1]))
    except BaseException:
        drop_scratch(scratch)  # a full disk must not stay full of our scratch files
        raise
    return EncodedImages(scratch, index)


def run_units(
    units_per_set: list[list[Unit]],
    encoder: ImageEncoder,
    workers: int = 1,
    scratch: Path | None = None,
    progress: bool = True,
    desc: str = "shards",
) -> dict[str, int]:
    """Write every unit: phase 1 encodes each distinct image once into `scratch` (split evenly over the
    workers), phase 2 writes the shards (contiguous runs of units of about equal work per worker). With
    `scratch` None every sample's images are encoded again as its shard is written (the baseline)."""
    units = [unit for units in units_per_set for unit in units]
    stats = {
        "shards_written": 0,
        "samples_written": 0,
        "samples_skipped": 0,
        "images_encoded": 0,
        "images_reused": 0,
    }
    if not units:
        if scratch is not None:
            drop_scratch(scratch)  # a run stopped after its last shard but before its clean-up
        return stats
    workers = max(1, workers)
    images: Images = (
        ReencodedImages(encoder)
        if scratch is None
        else _encode_all(units, encoder, workers, scratch, progress)
    )
    try:
        with _progress(len(units), progress, desc, "shard") as bar:
            # a unit's cost: its image references (bytes to write, or to encode without reuse) and samples
            weights = [len(_image_paths(unit)) + len(unit.samples) for unit in units]
            ranges = balanced_ranges(weights, min(workers, len(units)))
            if len(ranges) == 1:
                messages: Iterator[tuple] = (("shard", *write_unit(unit, images)) for unit in units)
            else:
                jobs = [([units[i] for i in r], images) for r in ranges]
                messages = _run_processes(_write_worker, jobs)
            for message in messages:
                _count(stats, message[1], message[2])
                bar.update()
        references = sum(len(_image_paths(unit)) for unit in units)
        # phase 1 encoded each distinct image once; without it every reference was encoded
        stats["images_encoded"] = len(images.index) if isinstance(images, EncodedImages) else references
        stats["images_reused"] = references - stats["images_encoded"]
    finally:
        images.remove()
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


def _run_processes(target: Callable[..., None], jobs: list[tuple]) -> Iterator[tuple]:
    """Run `target(*job, queue, parent pid)` for each job in its own process; yield their messages."""
    # fork: workers inherit the plan without pickling it, and callers need no __main__ guard
    context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    messages = context.Queue()
    processes = [
        context.Process(target=_guarded, args=(target, *job, messages, os.getpid()), daemon=True)
        for job in jobs
    ]
    try:
        for process in processes:
            process.start()
        done = 0
        while done < len(processes):
            try:
                message = messages.get(timeout=0.2)
            except queue.Empty:
                if any(p.is_alive() for p in processes):
                    continue
                break  # every worker exited: what they sent before is read below
            _raise_failure(message)
            if message[0] == "done":
                done += 1
            else:
                yield message
        while done < len(processes):  # a worker's last messages may arrive after its exit was seen
            try:
                message = messages.get(timeout=0.5)
            except queue.Empty:
                break
            _raise_failure(message)
            if message[0] == "done":
                done += 1
            else:
                yield message
        for process in processes:
            process.join()
        if done < len(processes) or any(p.exitcode != 0 for p in processes):
            codes = [p.exitcode for p in processes]
            raise RuntimeError(f"shard workers stopped before the end (exit codes {codes})")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def scratch_folder(sets: list[ShardSet]) -> Path:
    """Where the tasks of a build keep phase 1's files: `_encoded` beside the sets' folders."""
    return Path(os.path.commonpath([str(Path(s.folder).parent) for s in sets])) / SCRATCH


def build_sets(
    sets: list[ShardSet],
    encoder: ImageEncoder,
    task_index: int = 0,
    num_tasks: int = 1,
    workers: int = 1,
    reuse_images: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the shards of task `task_index` of `num_tasks` for every set; skip finished ones.
    Each set's manifest records how its images are stored (the encoder's settings). reuse_images=False
    encodes every sample's images again (the per-reference baseline; the same bytes)."""
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
    scratch = None
    if reuse_images:
        scratch = scratch_folder(sets) / f"task-{task_index:05d}-of-{num_tasks:05d}"
    report.update(run_units(units_per_set, encoder, workers, scratch, progress))
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

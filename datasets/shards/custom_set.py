"""A user's own triplets (JSONL) as shards: `coir data shards custom --triplets FILE --images DIR`.

One JSON object per line (blank lines are ignored):

    {"reference": "shirts/a.jpg", "text": "is blue with long sleeves", "target": "shirts/b.jpg", "id": "q1"}

reference, target: image paths relative to the images folder (--images); text: the modification text;
id (optional, string or integer): the sample's name, default the line number. Other keys are kept in
the sample's json under "extra". A line that is not such an object, repeats an id, or names a path
outside the folder goes to the error table with its line number; so does a triplet whose image is
missing. The gallery is every distinct image the well-formed lines name (missing ones: errors). The
file is taken as it is: the split name only labels the build.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from coir.common import fields as shard_fields
from coir.common.errors import ConfigError, MissingInputError
from coir.datasets.shards.spec import SampleSpec, error_record

REQUIRED = ("reference", "text", "target")
INDEX_COLUMNS = (
    ("id", "string"),
    ("line", "int64"),
    ("reference", "string"),
    ("target", "string"),
    ("text", "string"),
)
SCHEMA_HELP = (
    'one JSON object per line: {"reference": PATH, "text": TEXT, "target": PATH, "id": optional}, '
    "paths relative to --images"
)


def _unique_key(name: str, taken: set[str]) -> str:
    """A WebDataset key (no dots or slashes) not in `taken` ("a/b.jpg" and "a_b.jpg" would share one)."""
    key = name.replace(".", "_").replace("/", "_")
    while key in taken:
        key += "_"
    taken.add(key)
    return key


def _problem(record: Any, line: int) -> tuple[str, str] | None:
    """(reason, message) when a parsed line is not a valid triplet; None when it is."""
    if not isinstance(record, dict):
        return "bad_record", f"expected a JSON object, got {type(record).__name__}"
    for name in REQUIRED:
        value = record.get(name)
        if value is None:
            return "missing_field", f"field {name!r} is missing"
        if not isinstance(value, str) or not value.strip():
            return "bad_field", f"field {name!r} must be a non-empty string, got {value!r}"
    if "id" in record and (isinstance(record["id"], bool) or not isinstance(record["id"], (str, int))):
        return "bad_field", f"field 'id' must be a string or an integer, got {record['id']!r}"
    for name in ("reference", "target"):
        path = PurePosixPath(record[name])
        if path.is_absolute() or ".." in path.parts:
            return "bad_path", f"field {name!r}: {record[name]!r} is not a path inside the images folder"
    return None


def read_custom_triplets(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The well-formed lines of the file (each with its "line", 1-based, and "id") and an error record
    per bad line."""
    if not path.is_file():
        raise MissingInputError(path, "triplets file")
    records: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                problem: tuple[str, str] | None = ("bad_json", f"not valid JSON: {error}")
            else:
                problem = _problem(record, line)
            if problem is None:
                name = str(record.get("id", line))
                if name in seen:
                    problem = ("duplicate_id", f"id {name!r} is also on line {seen[name]}")
            if problem is not None:
                message = f"{path} line {line}: {problem[1]}"
                errors.append(error_record("triplet", f"line {line}", str(path), problem[0], message))
                continue
            seen[name] = line
            records.append({**record, "id": name, "line": line})
    return records, errors


def custom_sets(config: Any) -> tuple[list[SampleSpec], list[SampleSpec], list[dict]]:
    """The file's triplets and the gallery of every distinct image they name (BenchmarkShardsConfig:
    `triplets` the JSONL file, `root` the images folder)."""
    if not config.triplets:
        raise ConfigError("key 'triplets': the custom dataset needs a triplets file (--triplets FILE.jsonl)")
    triplets_file, root = Path(config.triplets), Path(config.root)
    records, errors = read_custom_triplets(triplets_file)
    named = sorted({r[name] for r in records for name in ("reference", "target")})
    present = {rel for rel in named if (root / rel).is_file()}
    samples, sample_keys = [], set()
    for r in records:
        absent = [r[name] for name in ("reference", "target") if r[name] not in present]
        if absent:
            message = f"{triplets_file} line {r['line']}: image {absent[0]!r} not found in {root}"
            errors.append(
                error_record("triplet", f"line {r['line']}", str(root / absent[0]), "missing_image", message)
            )
            continue
        extra = {k: v for k, v in r.items() if k not in (*REQUIRED, "id", "line")}
        row = {name: r[name] for name, _ in INDEX_COLUMNS}
        meta = {**row, "extra": extra}
        images = (
            (shard_fields.QUERY_IMAGE, str(root / r["reference"])),
            (shard_fields.TARGET_IMAGE, str(root / r["target"])),
        )
        samples.append(SampleSpec(_unique_key(r["id"], sample_keys), images, r["text"], meta, row))
    gallery, keys = [], set()
    for rel in named:
        if rel not in present:
            message = f"{rel!r} (named in {triplets_file}) not found in {root}"
            errors.append(error_record("gallery", rel, str(root / rel), "missing_image", message))
            continue
        key = _unique_key(rel, keys)
        row = {"image_id": rel, "category": "", "path": rel}
        gallery.append(
            SampleSpec(
                key, ((shard_fields.GALLERY_IMAGE, str(root / rel)),), None, {"id": rel, "path": rel}, row
            )
        )
    return samples, gallery, errors

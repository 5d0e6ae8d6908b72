"""`coir data shards custom`: a user's JSONL triplets as triplets/ + gallery/ shards with the error table."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
from lasco_fixture import run_command, tar_samples
from PIL import Image

from coir.common import fields

SHARDS = "coir.datasets.shards.cli"


def _images(folder, names):
    for i, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (20 * i, 100, 200 - 20 * i)).save(path)


def _samples(folder):
    return [s for p in sorted(folder.glob("*.tar")) for s in tar_samples(p)]


def test_custom_triplets_gallery_and_errors_by_line(tmp_path):
    images = tmp_path / "images"
    _images(images, ["a.jpg", "b.jpg", "sub/c.png", "d.jpg"])
    good = [
        {"reference": "a.jpg", "text": "make it red", "target": "b.jpg", "id": "first.one", "shop": "x"},
        {"reference": "b.jpg", "text": "add a stripe", "target": "sub/c.png"},  # no id: its line number
        {"reference": "sub/c.png", "text": "darker", "target": "a.jpg", "id": 7},
    ]
    lines = [
        json.dumps(good[0]),
        "{not json",  # line 2
        json.dumps(good[1]),  # line 3
        "",  # blank: ignored
        json.dumps(["a.jpg", "x", "b.jpg"]),  # line 5: not an object
        json.dumps({"reference": "a.jpg", "target": "b.jpg"}),  # line 6: no text
        json.dumps({"reference": "../a.jpg", "text": "t", "target": "b.jpg"}),  # line 7: outside
        json.dumps({"reference": "a.jpg", "text": "t", "target": "gone.jpg"}),  # line 8: missing image
        json.dumps({**good[1], "id": "first.one"}),  # line 9: repeats an id
        json.dumps(good[2]),  # line 10
    ]
    triplets = tmp_path / "mine.jsonl"
    triplets.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    argv = ["custom", "--triplets", str(triplets), "--images", str(images), "--out", str(out)]
    assert run_command(SHARDS, [*argv, "--size", "32", "--shard-size", "2", "--no-progress"]) == 0

    index = pq.read_table(out / "triplets" / "index.parquet").to_pylist()
    assert [(r["id"], r["line"], r["reference"], r["target"]) for r in index] == [
        ("first.one", 1, "a.jpg", "b.jpg"),
        ("3", 3, "b.jpg", "sub/c.png"),
        ("7", 10, "sub/c.png", "a.jpg"),
    ]
    streamed = _samples(out / "triplets")
    assert [s["__key__"] for s in streamed] == [r["key"] for r in index]
    assert "." not in streamed[0]["__key__"]
    assert [s[fields.TEXT].decode() for s in streamed] == [g["text"] for g in good]
    assert json.loads(streamed[0][fields.META])["extra"] == {"shop": "x"}
    assert Image.open(io.BytesIO(streamed[1][fields.QUERY_IMAGE])).size == (40, 30)  # 30 < 32: kept

    errors = pq.read_table(out / "triplets" / "errors.parquet").to_pylist()
    by_line = {e["id"]: e["reason"] for e in errors}
    assert by_line == {
        "line 2": "bad_json",
        "line 5": "bad_record",
        "line 6": "missing_field",
        "line 7": "bad_path",
        "line 8": "missing_image",
        "line 9": "duplicate_id",
    }
    assert all(f"line {e['id'].split()[1]}" in e["message"] for e in errors)
    assert "gone.jpg" in next(e["message"] for e in errors if e["reason"] == "missing_image")

    gallery = pq.read_table(out / "gallery" / "index.parquet").to_pylist()
    # every distinct image the well-formed lines name (d.jpg is named by none; gone.jpg is missing)
    assert sorted(r["path"] for r in gallery) == ["a.jpg", "b.jpg", "sub/c.png"]
    gallery_errors = pq.read_table(out / "gallery" / "errors.parquet").to_pylist()
    assert [(e["id"], e["reason"]) for e in gallery_errors] == [("gone.jpg", "missing_image")]
    manifest = json.loads((out / "triplets" / "manifest.json").read_text())
    assert manifest["num_samples"] == 3 and manifest["num_shards"] == 2
    assert manifest["config"]["triplets"] == str(triplets)


def test_custom_split_is_only_a_label_and_bad_inputs_stop(tmp_path):
    images = tmp_path / "images"
    _images(images, ["a.jpg", "b.jpg"])
    triplets = tmp_path / "t.jsonl"
    triplets.write_text(json.dumps({"reference": "a.jpg", "text": "x", "target": "b.jpg"}) + "\n")
    out = tmp_path / "out"
    argv = ["custom", "--triplets", str(triplets), "--images", str(images), "--size", "32", "--no-progress"]
    assert run_command(SHARDS, [*argv, "--split", "test", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["gallery", "triplets"]  # targets kept: not queries/
    assert json.loads((out / "triplets" / "manifest.json").read_text())["split"] == "test"
    missing = ["custom", "--triplets", str(tmp_path / "none.jsonl"), "--images", str(images)]
    assert run_command(SHARDS, [*missing, "--out", str(tmp_path / "o2"), "--no-progress"]) == 2
    assert run_command(SHARDS, ["custom", "--images", str(images), "--out", str(tmp_path / "o3")]) == 2

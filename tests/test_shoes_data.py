"""Shoes files: the reader (split rule, drops, malformed files, image search), `coir data shards shoes`
and `coir data vocab --dataset shoes`, on hand-written files and on the synthetic world's Shoes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lasco_fixture import folder_bytes, run_command, tar_samples
from shoes_fixture import ENTRIES, EVAL_ORDER, FOLDERS, NAMES, TRAIN_ORDER, make_shoes
from synth_fixture import built_world

from coir.common import fields
from coir.common.errors import CoirError, DataFormatError, MissingInputError
from coir.datasets.shoes import (
    locate_shoes_images,
    read_shoes_captions,
    read_shoes_image_names,
    read_shoes_split,
    shoes_image_paths,
)
from coir.datasets.vocab import Vocabulary

SHARDS = "coir.datasets.shards.cli"
VOCAB = "coir.datasets.vocab_cli"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_world(tmp_path_factory)


def samples(folder: Path) -> list[dict[str, bytes]]:
    return [s for p in sorted(folder.glob("*.tar")) for s in tar_samples(p)]


# ---------------------------------------------------------------- reader, hand-written files


def test_split_rule_keeps_same_split_triplets_and_counts_the_dropped(tmp_path: Path) -> None:
    root = make_shoes(tmp_path / "shoes")
    test = read_shoes_split(root, "test")
    assert test.images == [NAMES[k] for k in EVAL_ORDER]  # the list file's order
    assert [t.index for t in test.triplets] == [0, 2, 4, 5, 6]
    assert test.triplets[0].reference == NAMES["A"] and test.triplets[0].target == NAMES["B"]
    assert test.triplets[0].caption == "+40"
    # entry 1: reference T1 in train, target B in test: dropped from both splits, counted in both
    assert [(d.triplet.index, d.reason) for d in test.dropped] == [(1, "cross_split")]
    assert "reference 'img_womens_flats_6.jpg' is in the train split" in test.dropped[0].message
    train = read_shoes_split(root, "train")
    assert train.images == [NAMES[k] for k in TRAIN_ORDER]
    assert [t.index for t in train.triplets] == [3]
    assert train.dropped_count("cross_split") == 1 and train.dropped_count("unlisted_image") == 0
    assert "target 'img_womens_flats_2.jpg' is in the test split" in train.dropped[0].message
    assert len(read_shoes_captions(root)) == len(ENTRIES)


def test_an_image_in_no_list_is_its_own_reason(tmp_path: Path) -> None:
    root = make_shoes(tmp_path / "shoes")
    (root / "train_im_names.txt").write_text(NAMES["T2"] + "\n")  # T1 now in no list
    test = read_shoes_split(root, "test")
    assert [(d.triplet.index, d.reason) for d in test.dropped] == [(1, "unlisted_image")]
    train = read_shoes_split(root, "train")
    assert train.triplets == [] and [(d.triplet.index, d.reason) for d in train.dropped] == [
        (3, "unlisted_image")
    ]


def _captions_file(root: Path, rows: object) -> None:
    (root / "relative_captions_shoes.json").write_text(json.dumps(rows))


def _row(**kw: object) -> dict:
    return {"ImageName": "a.jpg", "ReferenceImageName": "b.jpg", "RelativeCaption": "is red", **kw}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [_row(), {"ImageName": "a.jpg", "ReferenceImageName": "b.jpg"}],
            "record 1, field 'RelativeCaption'",
        ),
        ([_row(), _row(), _row(ImageName=7)], "record 2, field 'ImageName': expected string, got int"),
        ([_row(ReferenceImageName=" ")], "record 0, field 'ReferenceImageName': empty image name"),
        ([_row(), ["a.jpg", "b.jpg", "x"]], "record 1: expected an object, got list"),
        ({"ImageName": "a.jpg"}, "expected a list, got dict"),
    ],
)
def test_malformed_captions_name_file_entry_and_field(tmp_path: Path, rows: object, expected: str) -> None:
    root = make_shoes(tmp_path / "shoes")
    _captions_file(root, rows)
    with pytest.raises(DataFormatError, match=re.escape(expected)) as error:
        read_shoes_split(root, "test")
    assert str(error.value).startswith(str(root / "relative_captions_shoes.json"))


def test_invalid_json_and_missing_files(tmp_path: Path) -> None:
    root = make_shoes(tmp_path / "shoes")
    (root / "relative_captions_shoes.json").write_text('[{"ImageName": "a.jpg",]')
    with pytest.raises(DataFormatError, match=r"relative_captions_shoes.json: invalid JSON.*line 1"):
        read_shoes_captions(root)
    (root / "relative_captions_shoes.json").unlink()
    with pytest.raises(MissingInputError, match="relative_captions_shoes.json"):
        read_shoes_captions(root)
    (root / "eval_im_names.txt").unlink()
    with pytest.raises(MissingInputError, match="eval_im_names.txt"):
        read_shoes_split(root, "train")  # the other split's list is needed to tell cross-split drops


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.jpg\nb.jpg\na.jpg\n", "eval_im_names.txt: line 3: 'a.jpg' is listed twice (first on line 1)"),
        ("a.jpg\nwomens_flats/0/b.jpg\n", "eval_im_names.txt: line 2: expected a file name"),
    ],
)
def test_malformed_image_lists_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    root = make_shoes(tmp_path / "shoes")
    (root / "eval_im_names.txt").write_text(text)
    with pytest.raises(DataFormatError, match=re.escape(expected)):
        read_shoes_image_names(root, "test")


def test_image_lists_tolerate_blank_lines_and_crlf_but_not_shared_images(tmp_path: Path) -> None:
    root = make_shoes(tmp_path / "shoes")
    (root / "eval_im_names.txt").write_text("a.jpg\r\n\r\n b.jpg \r\n")
    assert read_shoes_image_names(root, "test") == ["a.jpg", "b.jpg"]
    (root / "eval_im_names.txt").write_bytes(b"a.jpg\n\xff\xfe\n")
    with pytest.raises(DataFormatError, match="eval_im_names.txt: not UTF-8"):
        read_shoes_image_names(root, "test")
    (root / "eval_im_names.txt").write_text(f"{NAMES['A']}\n{NAMES['T1']}\n")
    with pytest.raises(DataFormatError, match=r"train_im_names.txt: line 2: .*also in eval_im_names.txt"):
        read_shoes_split(root, "test")


def test_images_are_found_by_name_below_womens_folders(tmp_path: Path) -> None:
    root = make_shoes(tmp_path / "shoes")
    wanted = [NAMES[k] for k in EVAL_ORDER]
    found, missing = locate_shoes_images(root, wanted)
    assert missing == []
    assert {n: p.relative_to(root).parent.as_posix() for n, p in found.items()} == {
        NAMES[k]: FOLDERS[k] for k in EVAL_ORDER
    }  # other/img_womens_flats_1.jpg is outside every womens_* folder: not taken, not ambiguous
    (root / FOLDERS["D"] / NAMES["D"]).unlink()
    (root / FOLDERS["E"] / NAMES["E"]).unlink()
    with pytest.raises(MissingInputError) as error:
        shoes_image_paths(root, wanted, "eval_im_names.txt")
    message = str(error.value)
    assert (
        "'img_womens_pumps_5.jpg' of eval_im_names.txt" in message and "2 of its 5 images missing" in message
    )
    copy = root / "womens_boots" / "9" / NAMES["C"]
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"")
    with pytest.raises(CoirError, match="'img_womens_boots_3.jpg' is at two places"):
        locate_shoes_images(root, [NAMES["C"]])


# ---------------------------------------------------------------- shards


def test_shards_of_the_hand_written_split_record_drops_and_missing_images(tmp_path: Path) -> None:
    root = make_shoes(tmp_path / "shoes")
    (root / FOLDERS["D"] / NAMES["D"]).unlink()  # entry 5 (reference D) cannot be written
    out = tmp_path / "out"
    args = ["shoes", "--root", str(root), "--split", "test", "--out", str(out), "--no-progress"]
    assert run_command(SHARDS, args) == 0
    triplets = samples(out / "triplets")
    assert [s["__key__"] for s in triplets] == ["0", "2", "4", "6"]
    assert all(fields.TARGET_IMAGE in s and fields.QUERY_IMAGE in s for s in triplets)  # test has targets
    meta = json.loads(triplets[1][fields.META])
    assert meta["reference"] == NAMES["B"] and meta["target"] == NAMES["C"] and meta["index"] == 2
    assert meta["target_path"] == f"{FOLDERS['C']}/{NAMES['C']}" and triplets[1][fields.TEXT] == b"+45"
    errors = pq.read_table(out / "triplets" / "errors.parquet").to_pylist()
    assert [(e["id"], e["reason"]) for e in errors] == [("1", "cross_split"), ("5", "missing_image")]
    gallery = samples(out / "gallery")
    assert sorted(json.loads(s[fields.META])["id"] for s in gallery) == sorted(
        NAMES[k] for k in ("A", "B", "C", "E")
    )
    gallery_errors = pq.read_table(out / "gallery" / "errors.parquet").to_pylist()
    assert [(e["id"], e["reason"]) for e in gallery_errors] == [(NAMES["D"], "missing_image")]
    manifest = json.loads((out / "triplets" / "manifest.json").read_text())
    assert manifest["num_samples"] == 4 and manifest["errors_by_reason"] == {
        "cross_split": 1,
        "missing_image": 1,
    }


def test_shards_of_the_synthetic_world_round_trip(world: Path, tmp_path: Path) -> None:
    counts = json.loads((world / "world.json").read_text())["counts"]["shoes"]
    captions = json.loads((world / "shoes" / "relative_captions_shoes.json").read_text())
    for split, listed in (("train", "train_im_names.txt"), ("test", "eval_im_names.txt")):
        out = tmp_path / split
        args = ["shoes", "--root", str(world / "shoes"), "--split", split, "--out", str(out)]
        assert run_command(SHARDS, [*args, "--size", "32", "--shard-size", "10", "--no-progress"]) == 0
        names = set((world / "shoes" / listed).read_text().split())
        expected = [i for i, c in enumerate(captions) if {c["ImageName"], c["ReferenceImageName"]} <= names]
        triplets = samples(out / "triplets")
        assert [int(s["__key__"]) for s in triplets] == expected and len(expected) == counts[split][
            "triplets"
        ]
        for sample in triplets:
            entry = captions[int(sample["__key__"])]
            meta = json.loads(sample[fields.META])
            assert (meta["reference"], meta["target"]) == (entry["ReferenceImageName"], entry["ImageName"])
            assert sample[fields.TEXT].decode() == entry["RelativeCaption"]
        index = pq.read_table(out / "triplets" / "index.parquet").to_pylist()
        assert [r["key"] for r in index] == [s["__key__"] for s in triplets]
        errors = pq.read_table(out / "triplets" / "errors.parquet").to_pylist()
        assert [e["reason"] for e in errors] == ["cross_split"] * counts["cross_split"]
        assert len(samples(out / "gallery")) == counts[split]["images"] == len(names)
    again = tmp_path / "again"
    args = ["shoes", "--root", str(world / "shoes"), "--split", "test", "--out", str(again), "--size", "32"]
    assert run_command(SHARDS, [*args, "--shard-size", "10", "--no-progress", "--workers", "2"]) == 0
    assert folder_bytes(again) == folder_bytes(tmp_path / "test")


# ---------------------------------------------------------------- vocabulary


def test_vocabulary_reads_only_the_training_triplets(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_shoes(tmp_path / "shoes")
    rows = json.loads((root / "relative_captions_shoes.json").read_text())
    rows[3]["RelativeCaption"] = "has a Zebra-print"  # the only train triplet
    rows[1]["RelativeCaption"] = "has a tiger print"  # cross-split: not a training caption
    rows[0]["RelativeCaption"] = "is taller"  # test
    (root / "relative_captions_shoes.json").write_text(json.dumps(rows))
    out = tmp_path / "vocab.json"
    assert run_command(VOCAB, ["--dataset", "shoes", "--root", str(root), "--out", str(out)]) == 0
    assert Vocabulary.load(out).words[5:] == ["has", "a", "zebra", "print"]
    assert "from 1 train captions: 9 entries = 4 words + 5 special tokens" in capsys.readouterr().out


def test_vocabulary_of_the_synthetic_shoes(world: Path, tmp_path: Path) -> None:
    captions = json.loads((world / "shoes" / "relative_captions_shoes.json").read_text())
    train = set((world / "shoes" / "train_im_names.txt").read_text().split())
    words: list[str] = []  # the synthetic captions are lower-case words and spaces
    for c in captions:
        if c["ImageName"] in train and c["ReferenceImageName"] in train:
            words += [w for w in c["RelativeCaption"].split() if w not in words]
    out = tmp_path / "shoes.json"
    assert run_command(VOCAB, ["--dataset", "shoes", "--root", str(world / "shoes"), "--out", str(out)]) == 0
    vocab = Vocabulary.load(out)
    assert vocab.words[5:] == words and {"is", "has", "strap"} <= set(words)


def test_published_annotation_files_when_present() -> None:
    """The published Shoes annotations (github.com/XiaoxiaoGuo/fashion-retrieval, dataset/: no images),
    when copied to shared/data/real/shoes/: the split rule drops nothing, and the vocabulary has the
    reference's 1,330 words (its README's size counts no special tokens)."""
    from conftest import REAL_DATA

    root = REAL_DATA / "shoes"
    if not (root / "relative_captions_shoes.json").is_file():
        pytest.skip(f"the published Shoes annotation files are not in {root}")
    train, test = read_shoes_split(root, "train"), read_shoes_split(root, "test")
    assert (len(train.images), len(test.images)) == (10_000, 4_658)
    assert (len(train.triplets), len(test.triplets), len(read_shoes_captions(root))) == (8_990, 1_761, 10_751)
    assert train.dropped == test.dropped == []
    assert [sum(t.reference == t.target for t in s.triplets) for s in (train, test)] == [26, 1]
    vocab = Vocabulary.from_captions(t.caption for t in train.triplets)
    assert (vocab.num_words, len(vocab)) == (1_330, 1_335)

"""Bad input gives errors naming the file, record and field; writers round-trip, byte-stable."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coir.common.errors import CoirError, ConfigError, DataFormatError, MissingInputError
from coir.datasets.cirr import (
    read_cirr_image_split,
    read_cirr_triplets,
    write_cirr_image_split,
    write_cirr_triplets,
)
from coir.datasets.fashioniq import (
    read_fashioniq_image_split,
    read_fashioniq_triplets,
    write_fashioniq_image_split,
    write_fashioniq_triplets,
)
from coir.datasets.lasco_files import (
    read_lasco_train_corpus,
    read_lasco_triplets,
    read_lasco_val_corpus,
    write_lasco_corpus,
    write_lasco_triplets,
)
from coir.datasets.records import (
    CIRRImageSet,
    CIRRTriplet,
    CorpusImage,
    FashionIQTriplet,
    LascoTriplet,
    VQAAnnotation,
    VQAAnswer,
    VQAQuestion,
)
from coir.datasets.vqa import (
    read_complementary_pairs,
    read_vqa_annotations,
    read_vqa_questions,
    vqa_paths,
    write_complementary_pairs,
    write_vqa_annotations,
    write_vqa_questions,
)

# ------------------------------------------------------------------ sample records

QUESTIONS = [VQAQuestion(42000, 42, "What color is the bus?"), VQAQuestion(73001, 73, "Is there a cat?")]
ANNOTATIONS = [
    VQAAnnotation(
        q.question_id,
        q.image_id,
        "what color is the" if i == 0 else "is there a",
        "other" if i == 0 else "yes/no",
        "red" if i == 0 else "no",
        tuple(VQAAnswer("red" if i == 0 else "no", "yes", j + 1) for j in range(10)),
    )
    for i, q in enumerate(QUESTIONS)
]
LASCO = [
    LascoTriplet(
        42000,
        42,
        "val2014/COCO_val2014_000000000042.jpg",
        "the bus is red",
        73,
        "val2014/COCO_val2014_000000000073.jpg",
    ),
    LascoTriplet(
        73000,
        73,
        "val2014/COCO_val2014_000000000073.jpg",
        "the bus is blue",
        42,
        "val2014/COCO_val2014_000000000042.jpg",
    ),
]
CORPUS = [
    CorpusImage(42, "val2014/COCO_val2014_000000000042.jpg"),
    CorpusImage(7, "val2014/COCO_val2014_7.jpg"),
]
MEMBERS = ("dev-1-0-img0", "dev-2-0-img1", "dev-3-1-img0", "dev-4-0-img0", "dev-5-2-img1", "dev-6-0-img0")
CIRR = [
    CIRRTriplet(1, MEMBERS[0], "add a dog", CIRRImageSet(9, MEMBERS, 0, 2), MEMBERS[2], {MEMBERS[2]: 1.0}),
    CIRRTriplet(2, MEMBERS[3], "Fewer towels", CIRRImageSet(9, MEMBERS, 3, 1), MEMBERS[1], {MEMBERS[1]: 0.5}),
]
CIRR_TEST = [CIRRTriplet(7, MEMBERS[0], "make it red", CIRRImageSet(3, MEMBERS))]
FIQ = [
    FashionIQTriplet("dress", "B00A", ("is shiny", "fit and flare"), "B00B"),
    FashionIQTriplet("dress", "B00C", ("is grey", "is shorter"), "B00D"),
]


# ------------------------------------------------------------------ readers under test

Reader = Callable[[Path], Any]


def _vqa_q(tmp: Path) -> tuple[Path, Reader]:
    path = vqa_paths(tmp, "val2014").questions
    write_vqa_questions(path, QUESTIONS, "val2014")
    return path, read_vqa_questions


def _vqa_a(tmp: Path) -> tuple[Path, Reader]:
    path = vqa_paths(tmp, "val2014").annotations
    write_vqa_annotations(path, ANNOTATIONS, "val2014")
    return path, read_vqa_annotations


def _lasco(tmp: Path) -> tuple[Path, Reader]:
    path = tmp / "lasco_val.json"
    write_lasco_triplets(path, LASCO)
    return path, read_lasco_triplets


def _lasco_corpus(tmp: Path) -> tuple[Path, Reader]:
    path = tmp / "lasco_val_corpus.json"
    write_lasco_corpus(path, CORPUS, "val")
    return path, read_lasco_val_corpus


def _cirr(tmp: Path) -> tuple[Path, Reader]:
    write_cirr_triplets(tmp, "val", CIRR)
    return tmp / "captions" / "cap.rc2.val.json", lambda p: read_cirr_triplets(tmp, "val")


def _fiq(tmp: Path) -> tuple[Path, Reader]:
    write_fashioniq_triplets(tmp, "dress", "val", FIQ)
    return tmp / "captions" / "cap.dress.val.json", lambda p: read_fashioniq_triplets(tmp, "dress", "val")


def _records_of(doc: Any) -> list:
    if isinstance(doc, dict):
        return doc["questions"] if "questions" in doc else doc["annotations"]
    return doc


# (maker, field to break, a wrong-typed value for it)
CASES = [
    (_vqa_q, "question", 17),
    (_vqa_q, "question_id", "42000"),
    (_vqa_a, "multiple_choice_answer", None),
    (_vqa_a, "image_id", 4.2),
    (_lasco, "query-text", ["x"]),
    (_lasco, "query-image", [42]),
    (_lasco_corpus, "id", "42"),
    (_lasco_corpus, "path", 3),
    (_cirr, "reference", 5),
    (_cirr, "target_hard", {"a": 1}),
    (_cirr, "pairid", True),
    (_fiq, "candidate", 1),
    (_fiq, "captions", "is shiny"),
]
IDS = [f"{m.__name__[1:]}-{f}" for m, f, _ in CASES]


@pytest.mark.parametrize(("maker", "field", "bad"), CASES, ids=IDS)
def test_missing_field_names_file_record_field(tmp_path: Path, maker, field: str, bad: Any) -> None:
    path, read = maker(tmp_path)
    doc = json.loads(path.read_text())
    del _records_of(doc)[1][field]
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError) as info:
        read(path)
    message = str(info.value)
    assert path.name in message and "record 1" in message and repr(field) in message
    assert "missing" in message
    assert (info.value.index, info.value.field) == (1, field)


@pytest.mark.parametrize(("maker", "field", "bad"), CASES, ids=IDS)
def test_wrong_type_names_file_record_field(tmp_path: Path, maker, field: str, bad: Any) -> None:
    path, read = maker(tmp_path)
    doc = json.loads(path.read_text())
    _records_of(doc)[1][field] = bad
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError) as info:
        read(path)
    message = str(info.value)
    assert path.name in message and "record 1" in message and repr(field) in message
    assert "expected" in message


@pytest.mark.parametrize("maker", [_vqa_q, _vqa_a, _lasco, _lasco_corpus, _cirr, _fiq])
def test_invalid_json_and_missing_file(tmp_path: Path, maker) -> None:
    path, read = maker(tmp_path)
    path.write_text('[{"qid": 1,')
    with pytest.raises(DataFormatError, match="invalid JSON") as info:
        read(path)
    assert path.name in str(info.value)
    path.unlink()
    with pytest.raises(MissingInputError) as missing:
        read(path)
    assert str(path) in str(missing.value) and isinstance(missing.value, CoirError)


def test_other_shapes_are_named(tmp_path: Path) -> None:
    path = tmp_path / "pairs.json"
    path.write_text("[[1, 2], [3]]")
    with pytest.raises(DataFormatError, match=r"pairs\.json, record 1"):
        read_complementary_pairs(path)
    path.write_text('{"questions": {}}')
    with pytest.raises(DataFormatError, match="'questions'"):
        read_vqa_questions(path)
    path.write_text('{"info": {}}')
    with pytest.raises(DataFormatError, match="missing top-level field"):
        read_vqa_annotations(path)
    path.write_text('{"42": "train2014/a.jpg", "x1": "train2014/b.jpg"}')
    with pytest.raises(DataFormatError, match=r"record 1, field 'x1'"):
        read_lasco_train_corpus(path)
    doc = [{"candidate": "a", "captions": ["x", 3], "target": "b"}]
    (tmp_path / "captions").mkdir()
    (tmp_path / "captions" / "cap.shirt.train.json").write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"record 0, field 'captions'.*item 1"):
        read_fashioniq_triplets(tmp_path, "shirt", "train")
    bad_answers = json.loads(json.dumps({"annotations": [vars_annotation(ANNOTATIONS[0])]}))
    bad_answers["annotations"][0]["answers"][3].pop("answer_confidence")
    path.write_text(json.dumps(bad_answers))
    with pytest.raises(DataFormatError, match=r"record 0, field 'answers\[3\]\.answer_confidence'"):
        read_vqa_annotations(path)
    with pytest.raises(ConfigError):
        read_cirr_triplets(tmp_path, "dev")
    with pytest.raises(ConfigError):
        vqa_paths(tmp_path, "test2015")


def vars_annotation(a: VQAAnnotation) -> dict:
    return {
        "question_id": a.question_id,
        "image_id": a.image_id,
        "question_type": a.question_type,
        "answer_type": a.answer_type,
        "multiple_choice_answer": a.multiple_choice_answer,
        "answers": [vars(x) for x in a.answers],
    }


# ------------------------------------------------------------------ round trips and determinism


def _write_all(root: Path) -> list[Path]:
    paths = vqa_paths(root / "vqa", "train2014")
    write_vqa_questions(paths.questions, QUESTIONS, "train2014")
    write_vqa_annotations(paths.annotations, ANNOTATIONS, "train2014")
    write_complementary_pairs(paths.complementary_pairs, [(42000, 73001)])
    write_lasco_triplets(root / "lasco" / "lasco_val.json", LASCO)
    write_lasco_corpus(root / "lasco" / "lasco_val_corpus.json", CORPUS, "val")
    write_lasco_corpus(root / "lasco" / "lasco_train_corpus.json", CORPUS, "train")
    write_cirr_triplets(root / "cirr", "val", CIRR)
    write_cirr_triplets(root / "cirr", "test1", CIRR_TEST)
    write_cirr_image_split(root / "cirr", "val", {m: f"./dev/{m}.png" for m in MEMBERS})
    write_fashioniq_triplets(root / "fiq", "dress", "val", FIQ)
    write_fashioniq_triplets(root / "fiq", "dress", "test", [FashionIQTriplet("dress", "B1", ("a", "b"))])
    write_fashioniq_image_split(root / "fiq", "dress", "val", ["B00A", "B00B"])
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_round_trip(tmp_path: Path) -> None:
    files = _write_all(tmp_path)
    assert not [p for p in files if p.name.startswith(".") or p.suffix == ".tmp"]  # no temp files left
    paths = vqa_paths(tmp_path / "vqa", "train2014")
    assert read_vqa_questions(paths.questions) == QUESTIONS
    assert read_vqa_annotations(paths.annotations) == ANNOTATIONS
    assert read_complementary_pairs(paths.complementary_pairs) == [(42000, 73001)]
    assert read_lasco_triplets(tmp_path / "lasco" / "lasco_val.json") == LASCO
    val_corpus = read_lasco_val_corpus(tmp_path / "lasco" / "lasco_val_corpus.json")
    assert [im.path for im in val_corpus] == [f"val/{im.path}" for im in CORPUS]
    assert read_lasco_train_corpus(tmp_path / "lasco" / "lasco_train_corpus.json") == CORPUS
    assert json.loads((tmp_path / "lasco" / "lasco_train_corpus.json").read_text()) == {
        str(im.id): im.path for im in CORPUS
    }
    cirr = read_cirr_triplets(tmp_path / "cirr", "val")
    assert cirr == CIRR and [t.target_soft for t in cirr] == [t.target_soft for t in CIRR]
    test1 = read_cirr_triplets(tmp_path / "cirr", "test1")
    assert test1 == CIRR_TEST and test1[0].target_hard is None
    raw_test1 = json.loads((tmp_path / "cirr" / "captions" / "cap.rc2.test1.json").read_text())[0]
    assert "target_hard" not in raw_test1 and "reference_rank" not in raw_test1["img_set"]
    assert read_cirr_image_split(tmp_path / "cirr", "val") == {m: f"./dev/{m}.png" for m in MEMBERS}
    assert read_fashioniq_triplets(tmp_path / "fiq", "dress", "val") == FIQ
    assert read_fashioniq_triplets(tmp_path / "fiq", "dress", "test")[0].target is None
    assert read_fashioniq_image_split(tmp_path / "fiq", "dress", "val") == ["B00A", "B00B"]
    questions = json.loads(paths.questions.read_text())
    assert list(questions) == ["info", "task_type", "data_type", "license", "data_subtype", "questions"]
    assert (questions["task_type"], questions["data_type"], questions["data_subtype"]) == (
        "Open-Ended",
        "mscoco",
        "train2014",
    )
    annotations = json.loads(paths.annotations.read_text())
    assert set(annotations) == {"info", "license", "data_subtype", "annotations", "data_type"}


def test_same_input_same_bytes(tmp_path: Path) -> None:
    first = _write_all(tmp_path / "a")
    second = _write_all(tmp_path / "b")
    assert [p.relative_to(tmp_path / "a") for p in first] == [p.relative_to(tmp_path / "b") for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    rewritten = _write_all(tmp_path / "a")  # overwriting in place gives the same bytes too
    assert [p.read_bytes() for p in rewritten] == [p.read_bytes() for p in second]


def test_writer_matches_real_layout(real_data: Path, tmp_path: Path) -> None:
    """Read a real file, write it back: the same JSON value (real key order and list form)."""
    src = real_data / "cirr"
    write_cirr_triplets(tmp_path, "val", read_cirr_triplets(src, "val"))
    original = json.loads((src / "captions" / "cap.rc2.val.json").read_text())
    written = json.loads((tmp_path / "captions" / "cap.rc2.val.json").read_text())
    assert written == original
    assert [list(r) for r in written[:50]] == [list(r) for r in original[:50]]
    write_fashioniq_triplets(
        tmp_path, "toptee", "val", read_fashioniq_triplets(real_data / "fashioniq", "toptee", "val")
    )
    fiq = "captions/cap.toptee.val.json"
    assert json.loads((tmp_path / fiq).read_text()) == json.loads((real_data / "fashioniq" / fiq).read_text())
    corpus = read_lasco_val_corpus(real_data / "lasco" / "lasco_val_corpus.json")
    write_lasco_corpus(tmp_path / "c.json", copy.copy(corpus), "val")
    assert (tmp_path / "c.json").read_bytes() == (real_data / "lasco" / "lasco_val_corpus.json").read_bytes()

"""VQA 2.0 questions, annotations and complementary pairs (the official files and their layout)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from coir.common.errors import ConfigError, DataFormatError
from coir.common.json_io import expect_dict, expect_list, load_json, records, write_json_atomic
from coir.common.unique import require_unique
from coir.datasets.records import VQAAnnotation, VQAAnswer, VQAQuestion

VQA_SPLITS = ("train2014", "val2014")

DEFAULT_INFO: dict[str, Any] = {
    "description": "VQA 2.0-format file written by coir",
    "url": "http://visualqa.org",
    "version": "2.0",
    "year": 2017,
    "contributor": "coir",
    "date_created": "",
}
DEFAULT_LICENSE: dict[str, str] = {
    "url": "http://creativecommons.org/licenses/by/4.0/",
    "name": "Creative Commons Attribution 4.0 International License",
}


class VQAPaths(NamedTuple):
    questions: Path
    annotations: Path
    complementary_pairs: Path


def vqa_paths(vqa_dir: str | Path, split: str) -> VQAPaths:
    """The three official file names of a split inside vqa_dir."""
    if split not in VQA_SPLITS:
        raise ConfigError(f"VQA split must be one of {', '.join(VQA_SPLITS)}, got {split!r}")
    d = Path(vqa_dir)
    return VQAPaths(
        d / f"v2_OpenEnded_mscoco_{split}_questions.json",
        d / f"v2_mscoco_{split}_annotations.json",
        d / f"v2_mscoco_{split}_complementary_pairs.json",
    )


def _top_list(path: Path, key: str, what: str) -> list:
    data = expect_dict(path, load_json(path, what))
    if key not in data:
        raise DataFormatError(path, "missing top-level field", field=key)
    return expect_list(path, data[key], field=key)


def read_vqa_questions(path: str | Path) -> list[VQAQuestion]:
    """The questions in file order; a repeated question_id is a DataFormatError."""
    path = Path(path)
    questions = [
        VQAQuestion(
            question_id=r.get("question_id", int),
            image_id=r.get("image_id", int),
            question=r.get("question", str),
        )
        for r in records(path, _top_list(path, "questions", "VQA questions file"))
    ]
    require_unique(path, (q.question_id for q in questions), "question_id", "question_id")
    return questions


def _answers(r) -> tuple[VQAAnswer, ...]:
    out = []
    for i, a in enumerate(r.get("answers", list)):
        # the usual answer in one test (exact JSON types; a bool is not an int); otherwise the checks
        # below name what is wrong (VQA train has 4.4 M answers)
        if (
            type(a) is dict
            and type(a.get("answer")) is str
            and type(a.get("answer_confidence")) is str
            and type(a.get("answer_id")) is int
        ):
            out.append(VQAAnswer(a["answer"], a["answer_confidence"], a["answer_id"]))
            continue
        if not isinstance(a, dict):
            raise r.error(f"item {i}: expected an object, got {type(a).__name__}", "answers")
        for key, kind in (("answer", str), ("answer_confidence", str), ("answer_id", int)):
            value = a.get(key)
            if value is None or not isinstance(value, kind) or isinstance(value, bool):
                problem = (
                    "missing" if key not in a else f"expected {kind.__name__}, got {type(value).__name__}"
                )
                raise r.error(f"item {i}: {problem}", f"answers[{i}].{key}")
        out.append(VQAAnswer(a["answer"], a["answer_confidence"], a["answer_id"]))
    return tuple(out)


def read_vqa_annotations(path: str | Path) -> list[VQAAnnotation]:
    """The annotations in file order; a repeated question_id is a DataFormatError."""
    path = Path(path)
    annotations = [
        VQAAnnotation(
            question_id=r.get("question_id", int),
            image_id=r.get("image_id", int),
            question_type=r.get("question_type", str),
            answer_type=r.get("answer_type", str),
            multiple_choice_answer=r.get("multiple_choice_answer", str),
            answers=_answers(r),
        )
        for r in records(path, _top_list(path, "annotations", "VQA annotations file"))
    ]
    require_unique(path, (a.question_id for a in annotations), "question_id", "question_id")
    return annotations


def read_complementary_pairs(path: str | Path) -> list[tuple[int, int]]:
    path = Path(path)
    pairs = expect_list(path, load_json(path, "VQA complementary pairs file"))
    out = []
    for i, p in enumerate(pairs):
        if (
            not isinstance(p, list)
            or len(p) != 2
            or not all(isinstance(q, int) and not isinstance(q, bool) for q in p)
        ):
            raise DataFormatError(path, f"expected [question_id, question_id], got {str(p)[:80]}", index=i)
        out.append((p[0], p[1]))
    return out


def _header(split: str, info: Mapping[str, Any] | None, license: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "info": dict(info or DEFAULT_INFO),
        "license": dict(license or DEFAULT_LICENSE),
        "data_subtype": split,
    }


def write_vqa_questions(
    path: str | Path,
    questions: Iterable[VQAQuestion],
    split: str,
    info: Mapping[str, Any] | None = None,
    license: Mapping[str, Any] | None = None,
) -> Path:
    """Official layout: info, task_type, data_type, license, data_subtype, questions."""
    head = _header(split, info, license)
    doc = {
        "info": head["info"],
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "license": head["license"],
        "data_subtype": split,
        "questions": [
            {"image_id": q.image_id, "question": q.question, "question_id": q.question_id} for q in questions
        ],
    }
    return write_json_atomic(path, doc)


def write_vqa_annotations(
    path: str | Path,
    annotations: Iterable[VQAAnnotation],
    split: str,
    info: Mapping[str, Any] | None = None,
    license: Mapping[str, Any] | None = None,
) -> Path:
    """Official layout: info, license, data_subtype, annotations, data_type."""
    head = _header(split, info, license)
    doc = {
        "info": head["info"],
        "license": head["license"],
        "data_subtype": split,
        "annotations": [
            {
                "question_type": a.question_type,
                "multiple_choice_answer": a.multiple_choice_answer,
                "answers": [
                    {"answer": x.answer, "answer_confidence": x.answer_confidence, "answer_id": x.answer_id}
                    for x in a.answers
                ],
                "image_id": a.image_id,
                "answer_type": a.answer_type,
                "question_id": a.question_id,
            }
            for a in annotations
        ],
        "data_type": "mscoco",
    }
    return write_json_atomic(path, doc)


def write_complementary_pairs(path: str | Path, pairs: Iterable[tuple[int, int]]) -> Path:
    return write_json_atomic(path, [[int(a), int(b)] for a, b in pairs])

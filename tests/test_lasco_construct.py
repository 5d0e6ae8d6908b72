"""Triplet construction from VQA pairs: filters, counts, directions, texts; the build config."""

from __future__ import annotations

import pytest

from coir.common.config import load_config
from coir.common.errors import ConfigError
from coir.datasets.lasco.config import LascoBuildConfig, LascoFilters, manifest_config
from coir.datasets.lasco.construct import agreement, construct_triplets
from coir.datasets.records import VQAAnnotation, VQAAnswer, VQAQuestion


class EchoRephraser:
    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[tuple[str, str]]] = []
        self.fail_on = fail_on

    def rephrase(self, pairs):
        self.calls.append(list(pairs))
        return [None if a == self.fail_on else f"now {a}" for _, a in pairs]


def _ann(qid, image, answer, agree=10, atype="other", others="zzz"):
    answers = tuple(VQAAnswer(answer if j < agree else others, "yes", j + 1) for j in range(10))
    return VQAAnnotation(qid, image, "what color is the", atype, answer, answers)


def _world(specs):
    """specs: [(image1, answer1, image2, answer2, kwargs)] -> questions, annotations, pairs."""
    questions, annotations, pairs = [], [], []
    for i, (im1, a1, im2, a2, kw) in enumerate(specs):
        q1, q2 = im1 * 1000 + i, im2 * 1000 + i
        questions += [
            VQAQuestion(q1, im1, "What color is the bus?"),
            VQAQuestion(q2, im2, "What color is the bus?"),
        ]
        annotations += [_ann(q1, im1, a1, **kw), _ann(q2, im2, a2, **kw)]
        pairs.append((q1, q2))
    return questions, annotations, pairs


def test_two_triplets_per_kept_pair_with_query_side_qid():
    questions, annotations, pairs = _world([(1, "red", 2, "blue", {}), (3, "green", 4, "white", {})])
    result = construct_triplets(questions, annotations, pairs, EchoRephraser(), LascoFilters())
    assert result.report["kept_pairs"] == 2
    assert len(result.triplets) == 2 * result.report["kept_pairs"] == result.report["triplets"]
    by_qid = {t.qid: t for t in result.triplets}
    q1, q2 = pairs[0]
    assert (
        by_qid[q1].query_image_id == 1
        and by_qid[q1].target_image_id == 2
        and by_qid[q1].target_answer == "blue"
    )
    assert by_qid[q2].query_image_id == 2 and by_qid[q2].target_image_id == 1 and by_qid[q2].text == "now red"
    assert len({t.key for t in result.triplets}) == 4 and all("." not in t.key for t in result.triplets)
    assert result.gallery_image_ids == [1, 2, 3, 4]


def test_each_filter_is_counted():
    questions, annotations, pairs = _world(
        [
            (1, "red", 2, "blue", {}),  # kept
            (3, "Red", 4, "red.", {}),  # same answer after normalisation
            (5, "red", 6, "blue", {"agree": 2}),  # low agreement
            (7, "two", 8, "3", {"atype": "number"}),  # answer type filtered below
            (9, "red", 10, "toolong", {}),  # text too long (rephraser makes it long)
            (11, "red", 12, "fail", {}),  # rephraser gives up
        ]
    )

    class Long(EchoRephraser):
        def rephrase(self, pairs):
            return [
                " ".join(["x"] * 50) if a == "toolong" else t
                for (_, a), t in zip(pairs, super().rephrase(pairs), strict=True)
            ]

    filters = LascoFilters(min_agreement=3, answer_types=["other", "yes/no"], max_text_words=20)
    result = construct_triplets(questions, annotations, pairs, Long(fail_on="fail"), filters)
    report = result.report
    assert report["kept_pairs"] == 1 and report["triplets"] == 2
    assert report["dropped_same_answer"] == 1
    assert report["dropped_agreement"] == 1
    assert report["dropped_answer_type"] == 1
    assert report["dropped_text_length"] == 1
    assert report["dropped_rephrase_failed"] == 1
    filters.drop_same_answer = False
    assert (
        construct_triplets(questions, annotations, pairs, EchoRephraser(), filters).report["kept_pairs"] == 4
    )


def test_agreement_uses_normalised_answers():
    answers = tuple(VQAAnswer(a, "yes", i) for i, a in enumerate(["two", "2", "2 ", "Two.", "3"] + ["4"] * 5))
    assert agreement(VQAAnnotation(1, 1, "how many", "number", "2", answers)) == 4


def test_missing_annotation_and_unknown_question_are_errors_not_fatal():
    questions, annotations, pairs = _world([(1, "red", 2, "blue", {}), (3, "green", 4, "white", {})])
    annotations = [a for a in annotations if a.question_id != pairs[1][1]]
    pairs.append((999999, pairs[0][0]))
    result = construct_triplets(
        questions,
        annotations,
        pairs,
        EchoRephraser(),
        LascoFilters(),
        {"annotations": "ann.json", "questions": "q.json", "pairs": "p.json"},
    )
    reasons = sorted((e["kind"], e["reason"]) for e in result.errors)
    assert reasons == [
        ("pair", "missing_annotation"),
        ("pair", "missing_question"),
        ("question", "missing_annotation"),
    ]
    assert any(str(pairs[1][1]) in e["message"] and "ann.json" in e["message"] for e in result.errors)
    assert result.report["kept_pairs"] == 1 and result.report["skipped_missing_annotation"] == 1


def test_rephraser_called_once_with_unique_requests():
    questions, annotations, pairs = _world([(1, "red", 2, "blue", {}), (3, "red", 4, "blue", {})])
    rephraser = EchoRephraser()
    construct_triplets(questions, annotations, pairs, rephraser, LascoFilters())
    assert len(rephraser.calls) == 1
    assert sorted(rephraser.calls[0]) == [
        ("What color is the bus?", "blue"),
        ("What color is the bus?", "red"),
    ]


def test_config_flags_yaml_and_overrides(tmp_path):
    yaml = tmp_path / "c.yaml"
    yaml.write_text("coco: /c\nout: /o\nfilters:\n  min_agreement: 5\nimages:\n  size: 128\n")
    config = load_config(LascoBuildConfig, yaml, ["images.resize=longest", "filters.answer_types=[number]"])
    assert (
        config.filters.min_agreement == 5 and config.images.size == 128 and config.images.resize == "longest"
    )
    assert config.filters.answer_types == ["number"]
    recorded = manifest_config(config)
    assert "workers" not in recorded and "out" not in recorded and recorded["images"]["size"] == 128
    with pytest.raises(ConfigError, match="filters.min_agreemnt"):
        load_config(LascoBuildConfig, None, ["coco=/c", "out=/o", "filters.min_agreemnt=3"])


def test_checked_in_config_loads():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "configs" / "data" / "lasco.yaml"
    config = load_config(LascoBuildConfig, path, ["coco=/c", "out=/o"])
    assert config.split == "train" and config.images.size == 384 and config.rephraser.kind == "rule"


def _pair_world(question, answer1, answer2, atype="other"):
    questions = [VQAQuestion(1000, 1, question), VQAQuestion(2000, 2, question)]
    annotations = [
        VQAAnnotation(
            1000, 1, "what is", atype, answer1, tuple(VQAAnswer(answer1, "yes", j + 1) for j in range(10))
        ),
        VQAAnnotation(
            2000,
            2,
            "what brand",
            "yes/no" if atype == "other" else atype,
            answer2,
            tuple(VQAAnswer(answer2 if j < 9 else "other", "maybe", j + 1) for j in range(10)),
        ),
    ]
    return questions, annotations, [(1000, 2000)]


@pytest.mark.parametrize(
    ("question", "answer", "raw_words", "normalised_words"),
    [
        ("What is in the bowl?", "None", "none", " 0 "),
        ("What brand is the phone?", "T-Mobile", "t-mobile", "t mobile"),
        ("Which dog is bigger?", "One on left", "one on left", "1 on left"),
    ],
)
def test_rephraser_gets_the_raw_answer_wording(question, answer, raw_words, normalised_words):
    from coir.datasets.lasco.rephrase import RuleRephraser

    questions, annotations, pairs = _pair_world(question, "something else", answer)
    echo = EchoRephraser()
    construct_triplets(questions, annotations, pairs, echo, LascoFilters())
    assert (question, raw_words) in echo.calls[0]
    result = construct_triplets(questions, annotations, pairs, RuleRephraser(), LascoFilters())
    to_target = next(t for t in result.triplets if t.target_qid == 2000)
    assert raw_words in to_target.text and normalised_words not in f" {to_target.text} "
    assert to_target.target_answer != raw_words  # the normalised answer is kept for comparing


def test_triplet_carries_target_side_types_and_both_sides_answers():
    questions, annotations, pairs = _pair_world("What brand is the phone?", "apple", "t-mobile")
    result = construct_triplets(questions, annotations, pairs, EchoRephraser(), LascoFilters())
    by_target = {t.target_qid: t for t in result.triplets}
    to_2000, to_1000 = by_target[2000], by_target[1000]
    assert (to_2000.question_type, to_2000.answer_type) == ("what brand", "yes/no")
    assert (to_1000.question_type, to_1000.answer_type) == ("what is", "other")
    assert (
        to_2000.target_answers == ("t-mobile",) * 9 + ("other",) and to_2000.query_answers == ("apple",) * 10
    )
    assert to_1000.target_answers == to_2000.query_answers and to_1000.query_answers == to_2000.target_answers

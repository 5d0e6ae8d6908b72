"""LaSCo triplets from VQA 2.0 complementary pairs.

A complementary pair (q1, q2) is the same question asked about two similar images with different
answers. Each kept pair gives two triplets, one per direction: query image of q1, target image of
q2, and a text stating q2's answer (and the reverse). A triplet's qid is the question_id of its
query side, as in the official lasco_{split}.json.

Filters (each counted in the report): answer type, annotator agreement on the consensus answer,
identical answers after normalisation, rephraser failure, text length. Normalised answers are only
for comparing (filters, agreement, de-duplication); the rephraser gets the raw consensus answer,
lightly cleaned, so texts keep its wording ("none", "t-mobile", "one on left"). Inputs that cannot
be used at all (a pair naming an unknown question, a question without annotation, an annotation whose
image_id is not its question's) are errors: recorded with their reason, not fatal. A question_id given
twice in one file is fatal (the readers refuse it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coir.common.errors import CoirError
from coir.datasets.lasco.config import LascoFilters
from coir.datasets.lasco.normalize import normalize_answer
from coir.datasets.lasco.rephrase import Rephraser
from coir.datasets.records import VQAAnnotation, VQAQuestion
from coir.datasets.shards.spec import error_record


@dataclass(frozen=True)
class Triplet:
    qid: int  # question_id of the query side
    target_qid: int
    query_image_id: int
    target_image_id: int
    text: str
    question: str
    query_answer: str  # normalised
    target_answer: str  # normalised
    question_type: str  # of the target side, like text and target_answer
    answer_type: str  # of the target side
    query_answers: tuple[str, ...] = ()  # the 10 annotator answers of the query side, as given
    target_answers: tuple[str, ...] = ()  # the 10 annotator answers of the target side, as given

    @property
    def key(self) -> str:
        return f"{self.qid}_{self.target_qid}"


@dataclass
class Construction:
    triplets: list[Triplet]
    report: dict[str, Any]
    errors: list[dict[str, str]]
    gallery_image_ids: list[int]  # every image of the split's questions (near-duplicates included)


def rephraser_answer(annotation: VQAAnnotation) -> str:
    """The consensus answer as the rephraser sees it: lower case, whitespace collapsed, not normalised."""
    return " ".join(annotation.multiple_choice_answer.lower().split())


def agreement(annotation: VQAAnnotation) -> int:
    """How many annotators gave the consensus answer, compared after normalisation."""
    consensus = normalize_answer(annotation.multiple_choice_answer)
    return sum(normalize_answer(a.answer) == consensus for a in annotation.answers)


def construct_triplets(
    questions: Sequence[VQAQuestion],
    annotations: Sequence[VQAAnnotation],
    pairs: Sequence[tuple[int, int]],
    rephraser: Rephraser,
    filters: LascoFilters,
    sources: dict[str, str] | None = None,
) -> Construction:
    """Triplets in a fixed order that keeps pairs sharing images close (for image reuse)."""
    sources = sources or {}
    qfile, afile, pfile = (sources.get(k, "") for k in ("questions", "annotations", "pairs"))
    by_qid = {q.question_id: q for q in questions}
    ann_by_qid = {a.question_id: a for a in annotations}
    errors: list[dict[str, str]] = []
    counts: Counter[str] = Counter()
    for q in questions:
        if q.question_id not in ann_by_qid:
            errors.append(
                error_record(
                    "question",
                    q.question_id,
                    qfile,
                    "missing_annotation",
                    f"question {q.question_id} has no annotation in {afile}",
                )
            )
    mismatched = {
        q.question_id
        for q in questions
        if q.question_id in ann_by_qid and ann_by_qid[q.question_id].image_id != q.image_id
    }
    for qid in sorted(mismatched):
        errors.append(
            error_record(
                "question",
                qid,
                afile,
                "image_mismatch",
                f"the annotation of question {qid} in {afile} is about image {ann_by_qid[qid].image_id}, "
                f"the question in {qfile} about image {by_qid[qid].image_id}",
            )
        )
    seen: set[frozenset[int]] = set()
    candidates: list[tuple[VQAQuestion, VQAAnnotation, VQAQuestion, VQAAnnotation]] = []
    for i, (q1, q2) in enumerate(pairs):
        pair_id = f"{q1}-{q2}"
        missing = [q for q in (q1, q2) if q not in by_qid]
        if missing:
            errors.append(
                error_record(
                    "pair",
                    pair_id,
                    pfile,
                    "missing_question",
                    f"pair {i} names question {missing[0]}, absent from {qfile}",
                )
            )
            counts["skipped_missing_question"] += 1
            continue
        unannotated = [q for q in (q1, q2) if q not in ann_by_qid]
        if unannotated:
            errors.append(
                error_record(
                    "pair",
                    pair_id,
                    pfile,
                    "missing_annotation",
                    f"pair {i}: question {unannotated[0]} has no annotation in {afile}",
                )
            )
            counts["skipped_missing_annotation"] += 1
            continue
        inconsistent = [q for q in (q1, q2) if q in mismatched]
        if inconsistent:
            errors.append(
                error_record(
                    "pair",
                    pair_id,
                    pfile,
                    "image_mismatch",
                    f"pair {i}: the annotation of question {inconsistent[0]} is about another image",
                )
            )
            counts["skipped_image_mismatch"] += 1
            continue
        if frozenset((q1, q2)) in seen or q1 == q2:
            counts["dropped_duplicate_pair"] += 1
            continue
        seen.add(frozenset((q1, q2)))
        a1, a2 = ann_by_qid[q1], ann_by_qid[q2]
        if a1.answer_type not in filters.answer_types or a2.answer_type not in filters.answer_types:
            counts["dropped_answer_type"] += 1
        elif min(agreement(a1), agreement(a2)) < filters.min_agreement:
            counts["dropped_agreement"] += 1
        elif filters.drop_same_answer and normalize_answer(a1.multiple_choice_answer) == normalize_answer(
            a2.multiple_choice_answer
        ):
            counts["dropped_same_answer"] += 1
        else:
            candidates.append((by_qid[q1], a1, by_qid[q2], a2))

    requests = sorted(
        {(q.question, rephraser_answer(a)) for c in candidates for q, a in ((c[0], c[3]), (c[2], c[1]))}
    )
    texts = dict(zip(requests, rephraser.rephrase(requests), strict=True)) if requests else {}

    triplets: list[Triplet] = []
    for q1, a1, q2, a2 in candidates:
        both = []
        for (qa, aa), (qb, ab) in (((q1, a1), (q2, a2)), ((q2, a2), (q1, a1))):
            text = texts[(qa.question, rephraser_answer(ab))]
            both.append(
                (
                    text,
                    Triplet(
                        qa.question_id,
                        qb.question_id,
                        qa.image_id,
                        qb.image_id,
                        text or "",
                        qa.question,
                        normalize_answer(aa.multiple_choice_answer),
                        normalize_answer(ab.multiple_choice_answer),
                        ab.question_type,
                        ab.answer_type,
                        tuple(a.answer for a in aa.answers),
                        tuple(a.answer for a in ab.answers),
                    ),
                )
            )
        if any(text is None or not text.strip() for text, _ in both):
            counts["dropped_rephrase_failed"] += 1
        elif any(len(text.split()) > filters.max_text_words for text, _ in both):
            counts["dropped_text_length"] += 1
        else:
            triplets.extend(t for _, t in both)
    counts["kept_pairs"] = len(triplets) // 2
    triplets.sort(
        key=lambda t: (
            min(t.query_image_id, t.target_image_id),
            max(t.query_image_id, t.target_image_id),
            min(t.qid, t.target_qid),
            t.qid,
        )
    )
    gallery = sorted({q.image_id for q in questions})
    report = {
        "questions": len(questions),
        "annotations": len(annotations),
        "pairs": len(pairs),
        **{k: counts[k] for k in sorted(counts)},
        "triplets": len(triplets),
        "gallery_images": len(gallery),
        "errors": len(errors),
    }
    return Construction(triplets, report, errors, gallery)


def require_triplets(construction: Construction, where: str) -> None:
    if not construction.triplets:
        raise CoirError(f"no triplets left from {where}: {construction.report}")

"""Typed records for every source format. Readers return these; nothing passes raw dicts around.

Field names follow the official files (snake_case where the file uses a hyphen).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------- VQA 2.0


@dataclass(frozen=True)
class VQAQuestion:
    question_id: int
    image_id: int
    question: str


@dataclass(frozen=True)
class VQAAnswer:
    answer: str
    answer_confidence: str  # "yes" | "maybe" | "no"
    answer_id: int


@dataclass(frozen=True)
class VQAAnnotation:
    question_id: int
    image_id: int
    question_type: str  # one of the 65 prefixes of mscoco_question_types.txt
    answer_type: str  # "yes/no" | "number" | "other"
    multiple_choice_answer: str
    answers: tuple[VQAAnswer, ...]


ComplementaryPair = tuple[int, int]  # (question_id, question_id): same question, two images

# ---------------------------------------------------------------- COCO / LaSCo


@dataclass(frozen=True)
class CorpusImage:
    """An image of a retrieval gallery: its id and its path relative to the image root."""

    id: int | str
    path: str


@dataclass(frozen=True)
class LascoTriplet:
    qid: int
    query_image_id: int
    query_image_path: str  # as in the file, e.g. "val2014/COCO_val2014_000000000042.jpg"
    query_text: str
    target_image_id: int
    target_image_path: str


# ---------------------------------------------------------------- CIRR


@dataclass(frozen=True)
class CIRRImageSet:
    id: int
    members: tuple[str, ...]  # six image names
    reference_rank: int | None = None
    target_rank: int | None = None


@dataclass(frozen=True)
class CIRRTriplet:
    pairid: int
    reference: str
    caption: str
    img_set: CIRRImageSet
    target_hard: str | None = None  # None on test1
    target_soft: dict[str, float] = field(default_factory=dict, hash=False, compare=False)


# ---------------------------------------------------------------- CIRCO


@dataclass(frozen=True)
class CIRCOQuery:
    """One entry of CIRCO's annotations/{val,test}.json (test: no target, ground truths or aspects)."""

    id: int
    reference_img_id: int
    relative_caption: str
    shared_concept: str
    target_img_id: int | None = None  # the image the caption was written for; first of gt_img_ids
    gt_img_ids: tuple[int, ...] = ()  # every image that answers the query
    semantic_aspects: tuple[str, ...] = ()


@dataclass(frozen=True)
class COCOImage:
    """One entry of a COCO image-info file's "images" (CIRCO's gallery: the 2017 unlabeled set)."""

    id: int
    file_name: str


# ---------------------------------------------------------------- FashionIQ

FASHIONIQ_CATEGORIES = ("dress", "shirt", "toptee")


@dataclass(frozen=True)
class FashionIQTriplet:
    category: str
    candidate: str  # asin of the reference image
    captions: tuple[str, ...]  # two relative captions
    target: str | None = None  # None on test


# ---------------------------------------------------------------- Shoes


@dataclass(frozen=True)
class ShoesTriplet:
    """One entry of relative_captions_shoes.json; `index` is its position in that file."""

    index: int
    reference: str  # ReferenceImageName, e.g. "img_womens_clogs_512.jpg"
    caption: str  # RelativeCaption
    target: str  # ImageName

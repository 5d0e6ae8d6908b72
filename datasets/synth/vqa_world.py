"""COCO-style images and VQA 2.0 questions, annotations and complementary pairs of one split.

Every image belongs to a family (render: scenes.py). Each image gets the family's axis question
(k = 0: "What color is the circle?", "How many stars are there?", "What shape is the red object?",
"Is there a square?") plus unpaired ones for variety; complementary pairs join the axis questions of
two members with different answers. Families come in three roles:
  both  - 5-6 near-duplicate members, common colours and shapes: texts need the image and the text;
  image - 2 members only: the reference's nearest image is the target;
  text  - like "both", but some targets carry a colour/shape combination unique in the split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from coir.datasets.coco import coco_image_name
from coir.datasets.records import VQAAnnotation, VQAAnswer, VQAQuestion
from coir.datasets.synth import labels as lab
from coir.datasets.synth.render import (
    COLOURS,
    COMMON_COLOURS,
    COMMON_SHAPES,
    RARE_COLOURS,
    RARE_SHAPES,
    SHAPES,
    Scene,
    encode,
    render_scene,
    write_file,
)
from coir.datasets.synth.scenes import (
    NUMBER_WORDS,
    Family,
    RareCombos,
    colour_family,
    count_family,
    pad_values,
    plural,
    rng_for,
    scene_distance,
    scene_facts,
    scene_truth,
    shape_family,
)
from coir.datasets.vqa import vqa_paths, write_complementary_pairs, write_vqa_annotations, write_vqa_questions

SPLITS = ("train2014", "val2014")
FIRST_IMAGE_ID = {"train2014": 100_000, "val2014": 500_000}


@dataclass(frozen=True)
class Question:
    k: int
    text: str
    question_type: str
    answer_type: str
    answer: str
    fact: tuple  # what the answer says about the image, as a scene fact (for the labels)


@dataclass
class PlannedFamily:
    role: str
    family: Family
    pairs: list[tuple[int, int]]  # member indices joined by a complementary pair of axis questions


# ---------------------------------------------------------------- planning


def plan_families(
    seed: int, split: str, n_pairs: int, image_share: float, text_share: float
) -> list[PlannedFamily]:
    """Text families first (until the designed text share or the split's unique combinations run
    out), then image families, then "both" families up to n_pairs; listed in a shuffled order."""
    rng = rng_for(seed, "vqa-plan", split)
    rare = RareCombos(train=split.startswith("train"))
    families: list[PlannedFamily] = []

    def make(role: str) -> PlannedFamily:
        fam = _make_family(rng_for(seed, "vqa", split, len(families)), role, rare)
        families.append(fam)
        return fam

    text_dirs, designed = round(text_share * 2 * n_pairs), 0
    while designed < text_dirs:
        fam = make("text-colour" if len(families) % 2 == 0 else "text-shape")
        rare_members = sum(v in RARE_COLOURS or v in RARE_SHAPES for v in fam.family.values)
        if rare_members == 0:
            families.pop()
            break
        designed += rare_members
    for _ in range(round(image_share * n_pairs)):
        make("image")
    while sum(len(f.pairs) for f in families) < n_pairs:
        make(rng.choices(["colour", "shape", "count"], weights=[0.4, 0.3, 0.3])[0])
    rng.shuffle(families)
    return families


def _make_family(rng: random.Random, role: str, rare: RareCombos) -> PlannedFamily:
    if role == "image":
        kind = rng.choice(["colour", "shape", "count", "exist"])
        if kind == "colour":
            shape, colours = rng.choice(COMMON_SHAPES), rng.sample(list(COMMON_COLOURS), 2)
            fam = colour_family(rng, shape, colours, small_focus=True)
        elif kind == "shape":
            colour, shapes = rng.choice(list(COMMON_COLOURS)), rng.sample(COMMON_SHAPES, 2)
            fam = shape_family(rng, colour, shapes, small_focus=True)
        elif kind == "count":
            a = rng.randint(1, 2)
            fam = count_family(rng, rng.choice(COMMON_SHAPES), [a, a + 1], small_focus=True)
        else:
            fam = count_family(rng, rng.choice(COMMON_SHAPES), [0, 1], kind="exist", small_focus=True)
        return PlannedFamily("image", fam, [(0, 1)])
    if role == "text-colour":
        shape, rares = rare.colours_for(rng, 3)
        fam = colour_family(rng, shape, pad_values(rng, rares, list(COMMON_COLOURS), 6))
        return PlannedFamily("text", fam, [(0, 3), (1, 4), (2, 5)])
    if role == "text-shape":
        colour, rares = rare.shapes_for(rng, 2)
        fam = shape_family(rng, colour, pad_values(rng, rares, list(COMMON_SHAPES), 6))
        return PlannedFamily("text", fam, [(0, 4), (1, 5), (2, 3)])
    if role == "colour":
        fam = colour_family(rng, rng.choice(rare.palette_shapes), rng.sample(rare.palette_colours, 6))
        return PlannedFamily("both", fam, [(0, 1), (2, 3), (4, 5)])
    if role == "shape":
        fam = shape_family(rng, rng.choice(rare.palette_colours), rng.sample(rare.palette_shapes, 6))
        return PlannedFamily("both", fam, [(0, 1), (2, 3), (4, 5)])
    # count: pairs two apart, so the nearest member (one object more or less) is never the target
    fam = count_family(rng, rng.choice(rare.palette_shapes), [0, 1, 2, 3, 4])
    return PlannedFamily("both", fam, [(0, 2), (1, 3)])


# ---------------------------------------------------------------- questions and answers


def axis_question(fam: Family, member: int) -> Question:
    value = fam.values[member]
    if fam.kind == "colour":
        return Question(
            0,
            f"What color is the {fam.focus}?",
            "what color is the",
            "other",
            value,
            ("obj", fam.focus, value),
        )
    if fam.kind == "shape":
        return Question(
            0, f"What shape is the {fam.focus} object?", "what", "other", value, ("obj", value, fam.focus)
        )
    if fam.kind == "count":
        return Question(
            0,
            f"How many {plural(fam.focus)} are there?",
            "how many",
            "number",
            str(value),
            ("count", fam.focus, value),
        )
    fact = ("exists", fam.focus) if value else ("count", fam.focus, 0)
    return Question(0, f"Is there a {fam.focus}?", "is there a", "yes/no", "yes" if value else "no", fact)


def extra_questions(rng: random.Random, scene: Scene) -> list[Question]:
    colour = rng.choice(list(COLOURS))
    present = any(o.colour == colour for o in scene.objects)
    yn = "yes" if present else "no"
    out = [
        Question(
            1, f"Are there any {colour} objects?", "are there any", "yes/no", yn, ("any-colour", colour, yn)
        )
    ]
    unique = [o for o in scene.objects if sum(p.shape == o.shape for p in scene.objects) == 1]
    if unique:
        obj = rng.choice(unique)
        asked = obj.colour if rng.random() < 0.5 else rng.choice([c for c in COLOURS if c != obj.colour])
        yn = "yes" if asked == obj.colour else "no"
        out.append(
            Question(2, f"Is the {obj.shape} {asked}?", "is the", "yes/no", yn, ("is", obj.shape, asked, yn))
        )
    return out


def _alternatives(q: Question) -> list[str]:
    if q.answer_type == "yes/no":
        return ["no" if q.answer == "yes" else "yes"]
    if q.answer_type == "number":
        return [str(n) for n in range(7) if str(n) != q.answer]
    pool = SHAPES if q.answer in SHAPES else list(COLOURS)
    return [a for a in pool if a != q.answer]


def _variant(rng: random.Random, q: Question) -> str:
    if q.answer_type == "number":
        return NUMBER_WORDS[int(q.answer)]
    if q.answer in SHAPES:
        return rng.choice([f"a {q.answer}", q.answer.capitalize()])
    return rng.choice([q.answer.capitalize(), q.answer + "."])


def make_answers(rng: random.Random, q: Question, low_agreement: bool) -> tuple[VQAAnswer, ...]:
    """Ten answers: the true one (some written differently), a few wrong ones.

    Low-agreement questions have 2-5 (yes/no: 5-6) agreeing annotators, so an agreement filter
    (LaSCo's default keeps >= 3) has something to drop; no wrong answer is more frequent than the
    true one, which is always multiple_choice_answer.
    """
    if low_agreement:
        agree = rng.randint(5, 6) if q.answer_type == "yes/no" else rng.randint(2, 5)
    else:
        agree = 10 - rng.choice([0, 0, 0, 1, 1, 2])
    n_wrong = 10 - agree
    alts = _alternatives(q)
    wrong: list[str] = []
    while len(wrong) < n_wrong:
        a = rng.choice(alts)
        if wrong.count(a) < agree:  # ties with the true answer allowed, never more
            wrong.append(a)
    right = [q.answer] * (10 - n_wrong)
    for i in rng.sample(range(len(right)), min(len(right) - 1, rng.choice([0, 0, 1, 2]))):
        right[i] = _variant(rng, q)
    entries = [(a, "yes" if rng.random() < 0.85 else "maybe") for a in right]
    entries += [(a, rng.choice(["maybe", "no"])) for a in wrong]
    rng.shuffle(entries)
    return tuple(VQAAnswer(a, c, i + 1) for i, (a, c) in enumerate(entries))


# ---------------------------------------------------------------- the split


def build_split(
    out: Path,
    split: str,
    n_pairs: int,
    seed: int,
    image_size: int,
    image_share: float,
    text_share: float,
    low_agreement_share: float,
    pbar=None,
) -> dict:
    planned = plan_families(seed, split, n_pairs, image_share, text_share)
    scenes: list[Scene] = []
    family_of: list[int] = []
    members: list[list[int]] = []
    for f, p in enumerate(planned):
        members.append(list(range(len(scenes), len(scenes) + len(p.family.scenes))))
        scenes.extend(p.family.scenes)
        family_of.extend([f] * len(p.family.scenes))
    image_ids = [FIRST_IMAGE_ID[split] + i for i in range(len(scenes))]

    questions: list[VQAQuestion] = []
    annotations: list[VQAAnnotation] = []
    axis: dict[int, Question] = {}
    scene_json: dict[str, dict] = {}
    for idx, scene in enumerate(scenes):
        f = family_of[idx]
        member = members[f].index(idx)
        rng = rng_for(seed, "vqa-q", split, idx)
        qs = [axis_question(planned[f].family, member), *extra_questions(rng, scene)]
        axis[idx] = qs[0]
        for q in qs:
            qid = image_ids[idx] * 1000 + q.k
            questions.append(VQAQuestion(qid, image_ids[idx], q.text))
            answers = make_answers(rng, q, rng.random() < low_agreement_share)
            annotations.append(
                VQAAnnotation(qid, image_ids[idx], q.question_type, q.answer_type, q.answer, answers)
            )
        scene_json[str(image_ids[idx])] = scene_truth(
            scene,
            image_size,
            file=f"{split}/{coco_image_name(split, image_ids[idx])}",
            family=f,
            member=member,
            role=planned[f].role,
            questions={str(image_ids[idx] * 1000 + q.k): q.answer for q in qs},
        )

    facts = lab.FactIndex([scene_facts(s) for s in scenes])
    pairs: list[tuple[int, int]] = []
    queries: list[dict] = []
    conflicts = 0
    for f, p in enumerate(planned):
        for a, b in p.pairs:
            ia, ib = members[f][a], members[f][b]
            pairs.append((image_ids[ia] * 1000, image_ids[ib] * 1000))
            for ref, tgt in ((ia, ib), (ib, ia)):
                fact = axis[tgt].fact
                near = lab.image_redundant(
                    ref, tgt, members[f], lambda x, y: scene_distance(scenes[x], scenes[y])
                )
                label, conflict = lab.label(facts.unique_for(fact, ref, tgt), near)
                conflicts += conflict
                queries.append(
                    {
                        "question_id": image_ids[ref] * 1000,
                        "target_question_id": image_ids[tgt] * 1000,
                        "reference_image_id": image_ids[ref],
                        "target_image_id": image_ids[tgt],
                        "question": axis[tgt].text,
                        "target_answer": axis[tgt].answer,
                        "fact": list(fact),
                        "family": f,
                        "role": p.role,
                        "label": label,
                    }
                )

    folder = out / "coco" / split
    for idx, scene in enumerate(scenes):
        write_file(
            folder / coco_image_name(split, image_ids[idx]), encode(render_scene(scene, image_size), "jpg")
        )
        if pbar is not None:
            pbar.update(1)
    paths = vqa_paths(out / "vqa", split)
    write_vqa_questions(paths.questions, questions, split)
    write_vqa_annotations(paths.annotations, annotations, split)
    write_complementary_pairs(paths.complementary_pairs, pairs)
    truth = out / "truth"
    from coir.common.json_io import write_json_atomic

    write_json_atomic(truth / f"coco_scenes_{split}.json", scene_json, indent=1)
    write_json_atomic(truth / f"vqa_queries_{split}.json", queries, indent=1)
    redundancy = {str(q["question_id"]): q["label"] for q in sorted(queries, key=lambda q: q["question_id"])}
    write_json_atomic(truth / f"vqa_redundancy_{split}.json", redundancy, indent=1)
    return {
        "images": len(scenes),
        "families": len(planned),
        "questions": len(questions),
        "complementary_pairs": len(pairs),
        "queries": len(queries),
        "redundancy": lab.summarize(
            [q["label"] for q in queries], {"image": image_share, "text": text_share}, conflicts
        ),
    }


def count_images(seed: int, split: str, n_pairs: int, image_share: float, text_share: float) -> int:
    return sum(len(p.family.scenes) for p in plan_families(seed, split, n_pairs, image_share, text_share))

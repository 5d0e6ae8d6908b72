"""Fashion200k in the TIRG protocol (google/tirg: datasets.py `Fashion200k`, test_retrieval.py).

Files under the root:
    labels/{dress,jacket,pants,skirt,top}_{train,test}_detect_all.txt
        one image a line: "path<TAB>detection score<TAB>description" (path relative to the root)
    test_queries.txt
        one test query a line: "reference_path target_path" (whitespace-separated; TIRG's file)
    the images, at the label files' paths (women/<category>/.../<id>/<id>_<k>.jpeg)

What the reference does, and what coir does with it:
- Descriptions are cleaned as the reference's `caption_post_process`: strip, then "." -> "dotmark",
  "?" -> "questionmark", "&" -> "andmark", "*" -> "starmark". Kept.
- The reference reads every file of labels/ whose name contains the split (in directory order);
  coir reads the five named files in the order above. Blank lines are skipped (the reference
  stops on them); any other line that does not have its three fields is a DataFormatError.
- Modification text: "replace X with Y", X the first word of the reference's description not in the
  target's, Y the first word of the target's not in the reference's; when every word is shared the
  reference's loop ends on the last word, and so does `different_words`. Kept.
- Training pairs (the reference draws them on the fly): a "parent" of a description is the
  description with one word deleted; descriptions with a common parent are siblings; an image is
  modifiable when one of its description's parents has two or more children. A draw for image i:
  replace i by uniformly random images until a modifiable one, pick one of its parents, one of that
  parent's children other than its own description, and a random image with that description.
  The released code deletes a word by substring replacement (`c.replace(w, '')`, then one
  "  " -> " " and a strip), which also cuts the word out of longer words ("red" out of "tiered")
  and deletes every repeat of it. coir deletes the one word (`word_deletion="token"`, the protocol:
  "one word difference"); `word_deletion="substring"` gives the released behaviour.
- Query text: the modification above, or (`text="target_description"`, ComposeAE's complete text
  query) the target's cleaned description, in training and test alike.
- Test: the gallery is every test image; a query's reference is removed from its ranking; a
  retrieved image is a hit when its description equals the target's (see eval/benchmarks/fashion200k.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from coir.common.errors import CoirError, ConfigError, DataFormatError, MissingInputError
from coir.common.paths import outside_root

FASHION200K_CATEGORIES = ("dress", "jacket", "pants", "skirt", "top")
FASHION200K_SPLITS = ("train", "test")
# the order naver/artemis (and MANME) read the training label files when building the vocabulary
VOCAB_CATEGORY_ORDER = ("dress", "skirt", "jacket", "pants", "top")
WORD_DELETIONS = ("token", "substring")
# the query text: "replace X with Y" (TIRG) or the target's whole description (ComposeAE's complete text
# query, `--use_complete_text_query`: the target caption after the clean-up)
TEXT_FORMS = ("modification", "target_description")
TEST_QUERIES = "test_queries.txt"
_CLEANUP = ((".", "dotmark"), ("?", "questionmark"), ("&", "andmark"), ("*", "starmark"))


@dataclass(frozen=True)
class Fashion200kImage:
    path: str  # relative to the root, as in the label file
    detection_score: float
    raw_description: str  # the third field as written (line end removed)
    description: str  # after the reference's clean-up
    category: str
    line: int  # 1-based line in its label file


@dataclass(frozen=True)
class Fashion200kQuery:
    reference: str  # image paths
    target: str
    reference_description: str
    target_description: str
    text: str  # "replace X with Y"
    line: int  # 1-based line in test_queries.txt


@dataclass(frozen=True)
class Fashion200kPair:
    """A drawn training pair: indices into the image list the PairIndex was built from."""

    reference: int
    target: int
    parent: str
    text: str


def clean_description(text: str) -> str:
    """The reference's `caption_post_process`."""
    text = text.strip()
    for old, new in _CLEANUP:
        text = text.replace(old, new)
    return text


def different_words(source: str, target: str) -> tuple[str, str, str]:
    """(X, Y, "replace X with Y") as the reference's `get_different_word` (descriptions non-empty)."""
    source_words, target_words = source.split(), target.split()
    x = next((w for w in source_words if w not in target_words), source_words[-1])
    y = next((w for w in target_words if w not in source_words), target_words[-1])
    return x, y, f"replace {x} with {y}"


def query_text(modification: str, target_description: str, text: str = "modification") -> str:
    """The query text of a pair in the chosen form (TEXT_FORMS)."""
    if text not in TEXT_FORMS:
        raise ConfigError(f"key 'text': must be one of {', '.join(TEXT_FORMS)}, got {text!r}")
    return modification if text == "modification" else target_description


def _check(split: str, category: str | None = None) -> None:
    if split not in FASHION200K_SPLITS:
        raise ConfigError(f"Fashion200k split must be one of {', '.join(FASHION200K_SPLITS)}, got {split!r}")
    if category is not None and category not in FASHION200K_CATEGORIES:
        raise ConfigError(
            f"Fashion200k category must be one of {', '.join(FASHION200K_CATEGORIES)}, got {category!r}"
        )


def label_path(root: str | Path, category: str, split: str) -> Path:
    _check(split, category)
    return Path(root) / "labels" / f"{category}_{split}_detect_all.txt"


def queries_file(root: str | Path) -> Path:
    return Path(root) / TEST_QUERIES


def _lines(path: Path, what: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its end) of every non-blank line, as readlines() splits."""
    if not path.is_file():
        raise MissingInputError(path, what)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataFormatError(path, f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def read_label_file(path: str | Path, category: str) -> list[Fashion200kImage]:
    path = Path(path)
    images = []
    for number, line in _lines(path, "Fashion200k label file"):
        fields = line.split("\t")
        if len(fields) < 3:
            missing = ("detection_score", "description")[len(fields) - 1]
            raise DataFormatError(
                path,
                f"expected 3 tab-separated fields (path, detection score, description), got {len(fields)}",
                field=missing,
                line=number,
            )
        if any(extra.strip() for extra in fields[3:]):
            raise DataFormatError(
                path,
                f"text after the description (a tab in it?): {fields[3]!r}",
                field="description",
                line=number,
            )
        image_path, score, raw = fields[0].strip(), fields[1].strip(), fields[2]
        if not image_path:
            raise DataFormatError(path, "empty image path", field="path", line=number)
        reason = outside_root(image_path)
        if reason is not None:
            raise DataFormatError(path, f"image path {image_path!r} {reason}", field="path", line=number)
        try:
            detection_score = float(score)
        except ValueError:
            raise DataFormatError(
                path, f"not a number: {score!r}", field="detection_score", line=number
            ) from None
        description = clean_description(raw)
        if not description:
            raise DataFormatError(path, "empty description", field="description", line=number)
        images.append(Fashion200kImage(image_path, detection_score, raw, description, category, number))
    return images


def read_fashion200k_images(
    root: str | Path, split: str, categories: Sequence[str] = FASHION200K_CATEGORIES
) -> list[Fashion200kImage]:
    """Every line of the split's label files, category by category in the given order."""
    _check(split)
    return [image for c in categories for image in read_label_file(label_path(root, c, split), c)]


def unique_images(
    root: str | Path, images: Sequence[Fashion200kImage], split: str, strict: bool = True
) -> list[Fashion200kImage]:
    """One entry per image path, the first kept. A path listed again with the same description is
    dropped (the reference's gallery would hold it twice); with another description it is an error
    when `strict` (a test gallery: the target's description would be ambiguous)."""
    first: dict[str, Fashion200kImage] = {}
    for image in images:
        seen = first.setdefault(image.path, image)
        if strict and seen.description != image.description:
            raise DataFormatError(
                label_path(root, image.category, split),
                f"image {image.path!r} is listed before ({seen.category}, line {seen.line}) with another "
                f"description: {seen.description!r} vs {image.description!r}",
                field="description",
                line=image.line,
            )
    return list(first.values())


def read_test_queries(root: str | Path) -> list[tuple[int, str, str]]:
    """(line, reference path, target path) of every non-blank line of test_queries.txt."""
    path = queries_file(root)
    rows = []
    for number, line in _lines(path, "Fashion200k test_queries.txt"):
        parts = line.split()
        if len(parts) != 2:
            raise DataFormatError(
                path,
                f"expected 2 whitespace-separated image paths (reference, target), got {len(parts)}",
                field="target",
                line=number,
            )
        rows.append((number, parts[0], parts[1]))
    return rows


def build_test_queries(root: str | Path, gallery: Sequence[Fashion200kImage]) -> list[Fashion200kQuery]:
    """One query per line of test_queries.txt; both paths must be test images."""
    by_path = {image.path: image for image in gallery}
    queries = []
    for number, reference, target in read_test_queries(root):
        for name, value in (("reference", reference), ("target", target)):
            if value not in by_path:
                raise DataFormatError(
                    queries_file(root), f"{value!r} is not in the test label files", field=name, line=number
                )
        source, goal = by_path[reference].description, by_path[target].description
        queries.append(
            Fashion200kQuery(reference, target, source, goal, different_words(source, goal)[2], number)
        )
    return queries


def parents(description: str, word_deletion: str = "token") -> list[str]:
    """The description with each of its words deleted in turn (one entry per word, repeats possible).
    token: the word itself is removed (the protocol); substring: the released code's
    `c.replace(w, '').replace('  ', ' ').strip()`."""
    words = description.split()
    if word_deletion == "token":
        return [" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))]
    if word_deletion == "substring":
        return [description.replace(w, "").replace("  ", " ").strip() for w in words]
    raise ConfigError(
        f"key 'word_deletion': must be one of {', '.join(WORD_DELETIONS)}, got {word_deletion!r}"
    )


class PairIndex:
    """The reference's `caption_index_init_` over a list of descriptions (one per image)."""

    def __init__(self, descriptions: Sequence[str], word_deletion: str = "token") -> None:
        self.descriptions = list(descriptions)
        images_of: dict[str, list[int]] = {}
        for i, description in enumerate(self.descriptions):
            images_of.setdefault(description, []).append(i)
        children: dict[str, dict[str, None]] = {}  # parent -> its children, in first-seen order
        for description in images_of:
            for parent in parents(description, word_deletion):
                children.setdefault(parent, {})[description] = None
        self.images_of = images_of
        self.children = {p: list(c) for p, c in children.items()}
        self.image_parents: list[list[str]] = [[] for _ in self.descriptions]
        for parent, kids in self.children.items():
            if len(kids) >= 2:
                for kid in kids:
                    for i in images_of[kid]:
                        self.image_parents[i].append(parent)

    @property
    def modifiable(self) -> int:
        """Images whose description has a sibling."""
        return sum(1 for p in self.image_parents if p)

    def sample(self, index: int, rng: random.Random) -> Fashion200kPair:
        """One draw for image `index`, as the reference's `caption_index_sample_`."""
        if not self.modifiable:
            raise CoirError("no two Fashion200k descriptions share a parent: no training pair can be drawn")
        while not self.image_parents[index]:
            index = rng.randrange(len(self.descriptions))
        own = self.descriptions[index]
        while True:
            parent = rng.choice(self.image_parents[index])
            child = rng.choice(self.children[parent])
            if child != own:
                break
        target = rng.choice(self.images_of[child])
        return Fashion200kPair(index, target, parent, different_words(own, self.descriptions[target])[2])


def draw_training_pairs(
    descriptions: Sequence[str], pairs_per_image: int, seed: int, word_deletion: str = "token"
) -> list[tuple[int, int, Fashion200kPair]]:
    """(draw, position, pair): `pairs_per_image` passes, each over every image in a fresh seeded
    random order (the reference's shuffled epoch), one draw per image. Same arguments, same pairs."""
    if pairs_per_image < 1:
        raise ConfigError(f"key 'pairs_per_image': must be >= 1, got {pairs_per_image}")
    index = PairIndex(descriptions, word_deletion)
    rng = random.Random(seed)
    out = []
    for draw in range(pairs_per_image):
        order = list(range(len(descriptions)))
        rng.shuffle(order)
        out += [(draw, position, index.sample(i, rng)) for position, i in enumerate(order)]
    return out


def vocabulary_descriptions(root: str | Path, split: str = "train") -> list[str]:
    """The descriptions naver/artemis builds its Fashion200k vocabulary from: the raw third field
    (its own clean-up follows, not the one above), files in the order dress, skirt, jacket, pants, top."""
    return [image.raw_description for image in read_fashion200k_images(root, split, VOCAB_CATEGORY_ORDER)]

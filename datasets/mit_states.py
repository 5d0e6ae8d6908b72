"""MIT-States in the TIRG protocol (google/tirg: datasets.py `MITStates`, test_retrieval.py).

Files under the root: `images/<adjective noun>/<name>.jpg`, one folder per state-object pair.

What the reference does, and what coir does with it:
- Folders: a name without a space is skipped (e.g. `images/adj`), so is one whose adjective is
  the word "adj" (the folders of images without a state label, `adj <noun>`). A name that does not
  split into two words, a file where a folder is expected, or a file in a folder whose name does not
  end in "jpg" is a DataFormatError (the reference crashes on them). The reference walks the folders
  in directory order (`os.listdir`); coir sorts folders and files, so the gallery order (and with it
  the order of tied scores and of the training draws) is the same on every machine.
- Split by noun: the 49 nouns of TEST_NOUNS are the test split, every other noun the training split,
  so test objects are never seen in training (only their states are).
- Every noun of a split needs at least two adjectives (the reference asserts it: its pair draw would
  loop forever otherwise).
- Test queries: every test image with every other adjective of its noun (adjectives in the order the
  noun's images are first met), the modification text the target adjective. A retrieved image is a
  hit when its "adjective noun" equals the target's; the query's own image is removed from its ranking.
- Training pairs (the reference draws them on the fly): reference and target share the noun, the text
  is the target's adjective. `draw="other"` (the default, the paper: "the same object, a different
  state") draws the target adjective among the noun's other adjectives. `draw="released"` is the
  released `__getitem__`: for an image it draws two targets, each with an adjective drawn among all
  of the noun's adjectives (its own included), until the two adjectives differ; it returns the first
  pair and gives the second as the next item whatever index is asked, so half the images of a pass are
  references, each of two pairs, and a target may show the reference's own state (or be the
  reference image itself).
- Text: TIRG's modification text is the adjective alone (`text="adjective"`); ComposeAE
  (ecom-research/ComposeAE) gives its text model the whole target label, "adjective noun"
  (`text="adjective_noun"`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coir.common.errors import ConfigError, DataFormatError, MissingInputError

TEST_NOUNS = (
    "armor", "bracelet", "bush", "camera", "candy", "castle", "ceramic", "cheese", "clock", "clothes",
    "coffee", "fan", "fig", "fish", "foam", "forest", "fruit", "furniture", "garden", "gate", "glass",
    "horse", "island", "laptop", "lead", "lightning", "mirror", "orange", "paint", "persimmon",
    "plastic", "plate", "potato", "road", "rubber", "sand", "shell", "sky", "smoke", "steel", "stream",
    "table", "tea", "tomato", "vacuum", "wax", "wheel", "window", "wool",
)  # fmt: skip
MIT_STATES_SPLITS = ("train", "test")
TEXT_FORMS = ("adjective", "adjective_noun")
DRAWS = ("other", "released")
NO_STATE = "adj"  # the adjective of the folders without a state label


@dataclass(frozen=True)
class MitStatesImage:
    path: str  # relative to the root: images/<adjective noun>/<name>.jpg
    adjective: str
    noun: str

    @property
    def label(self) -> str:
        return f"{self.adjective} {self.noun}"


@dataclass(frozen=True)
class MitStatesQuery:
    reference: int  # index into the test images
    adjective: str  # the target's
    noun: str

    @property
    def target_label(self) -> str:
        return f"{self.adjective} {self.noun}"


@dataclass(frozen=True)
class MitStatesPair:
    reference: int  # indices into the image list
    target: int


def _check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"key {key!r}: must be one of {', '.join(choices)}, got {value!r}")


def query_text(adjective: str, noun: str, text: str = "adjective") -> str:
    """The modification text: the target adjective (TIRG) or "adjective noun" (ComposeAE)."""
    _check_choice("text", text, TEXT_FORMS)
    return adjective if text == "adjective" else f"{adjective} {noun}"


def read_mit_states_images(root: str | Path, split: str) -> list[MitStatesImage]:
    """The split's images, folders and files in sorted order (see the module text for the rules)."""
    _check_choice("split", split, MIT_STATES_SPLITS)
    folder_root = Path(root) / "images"
    if not folder_root.is_dir():
        raise MissingInputError(folder_root, "MIT-States images folder")
    test = set(TEST_NOUNS)
    images: list[MitStatesImage] = []
    for folder in sorted(folder_root.iterdir(), key=lambda p: p.name):
        if " " not in folder.name:
            continue
        words = folder.name.split()
        if len(words) != 2:
            raise DataFormatError(
                folder, f"expected a folder named '<adjective> <noun>', got {len(words)} words"
            )
        adjective, noun = words
        if adjective == NO_STATE or (noun in test) != (split == "test"):
            continue
        if not folder.is_dir():
            raise DataFormatError(folder, "expected a folder of images, found a file")
        for file in sorted(folder.iterdir(), key=lambda p: p.name):
            if not file.name.endswith("jpg"):
                raise DataFormatError(file, "expected only .jpg images in a MIT-States folder")
            images.append(MitStatesImage(f"images/{folder.name}/{file.name}", adjective, noun))
    for noun, adjectives in noun_adjectives(images).items():
        if len(adjectives) < 2:
            raise DataFormatError(
                folder_root / f"{adjectives[0]} {noun}",
                f"noun {noun!r} has one adjective in the {split} split; pairs need two or more",
            )
    return images


def noun_adjectives(images: Sequence[MitStatesImage]) -> dict[str, list[str]]:
    """noun -> its adjectives in the order their images are first met (the reference's noun2adjs)."""
    out: dict[str, list[str]] = {}
    for image in images:
        adjectives = out.setdefault(image.noun, [])
        if image.adjective not in adjectives:
            adjectives.append(image.adjective)
    return out


def label_images(images: Sequence[MitStatesImage]) -> dict[str, list[int]]:
    """ "adjective noun" -> indices of its images (the reference's caption2imgids)."""
    out: dict[str, list[int]] = {}
    for i, image in enumerate(images):
        out.setdefault(image.label, []).append(i)
    return out


def build_test_queries(images: Sequence[MitStatesImage]) -> list[MitStatesQuery]:
    """Each image with each other adjective of its noun (the reference's generate_test_queries_)."""
    adjectives = noun_adjectives(images)
    return [
        MitStatesQuery(i, adjective, image.noun)
        for i, image in enumerate(images)
        for adjective in adjectives[image.noun]
        if adjective != image.adjective
    ]


class _Drawer:
    def __init__(self, images: Sequence[MitStatesImage], rng: random.Random) -> None:
        self.images, self.rng = images, rng
        self.adjectives = noun_adjectives(images)
        self.by_label = label_images(images)

    def target(self, index: int, exclude_own: bool) -> int:
        image = self.images[index]
        choices = self.adjectives[image.noun]
        if exclude_own:
            choices = [a for a in choices if a != image.adjective]
        adjective = self.rng.choice(choices)
        return self.rng.choice(self.by_label[f"{adjective} {image.noun}"])


def draw_training_pairs(
    images: Sequence[MitStatesImage], pairs_per_image: int, seed: int, draw: str = "other"
) -> list[tuple[int, int, MitStatesPair]]:
    """(pass, position, pair): `pairs_per_image` passes, each over every image in a fresh seeded random
    order, one pair per position (see the module text for `draw`). Same arguments, same pairs."""
    _check_choice("draw", draw, DRAWS)
    if pairs_per_image < 1:
        raise ConfigError(f"key 'pairs_per_image': must be >= 1, got {pairs_per_image}")
    rng = random.Random(seed)
    drawer = _Drawer(images, rng)
    saved: MitStatesPair | None = None
    out = []
    for n in range(pairs_per_image):
        order = list(range(len(images)))
        rng.shuffle(order)
        for position, index in enumerate(order):
            if draw == "other":
                pair = MitStatesPair(index, drawer.target(index, exclude_own=True))
            elif saved is not None:
                pair, saved = saved, None
            else:
                while True:
                    first, second = drawer.target(index, False), drawer.target(index, False)
                    if images[first].adjective != images[second].adjective:
                        break
                pair, saved = MitStatesPair(index, first), MitStatesPair(index, second)
            out.append((n, position, pair))
    return out


def vocabulary_texts(root: str | Path, split: str = "train") -> list[str]:
    """The texts TIRG builds its word vocabulary from (`get_all_texts`): every training image's
    "adjective noun", one per image."""
    return [image.label for image in read_mit_states_images(root, split)]

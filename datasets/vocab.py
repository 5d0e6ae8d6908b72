"""The word vocabulary of the ARTEMIS / CMAP / MANME text encoders (GloVe + BiGRU or LSTM).

These methods do not use a subword tokenizer: a caption is cleaned and split into words exactly as
naver/artemis does (config.py `cleanCaption`, then `nltk.word_tokenize(... .lower())`), and every
word seen in the training captions gets an id. Ids follow the reference's construction
(vocab.py `build_vocab`): the five special tokens first, then the words in order of first
appearance while reading the training captions (FashionIQ: dress, shirt, toptee files, all first
captions of a file before its second captions; CIRR: the file order). Same captions, same ids, so a
vocabulary built here indexes the embedding rows of a model trained with the reference code.

Fashion200k: the reference (naver/artemis, and MANME's copy of it) builds the vocabulary from the
training product descriptions (the third field of labels/{dress,skirt,jacket,pants,top}_train_detect_all.txt,
in that order), not from the "replace X with Y" texts, and puts "replace" and "with" right after
the special tokens (a description word equal to one of them is not added twice).

TIRG (google/tirg text_model.py `SimpleVocab`) tokenises otherwise (`tokenizer="tirg"`): non-ASCII
characters dropped, lower case, ASCII punctuation removed, split on whitespace; its only special entry
is <UNK> = 0 (unknown words, and the padding), the words follow in sorted order; a query is its words
alone (no <start> / <end>; FashionIQ's "<and>" becomes the word "and").

MIT-States: TIRG builds its vocabulary from every training image's label, "adjective noun" (its
`get_all_texts`), so the test nouns are unknown words; the adjectives, the texts of its queries, are
all known.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from coir.common.errors import ConfigError, DataFormatError
from coir.common.json_io import load_json, write_json_atomic
from coir.datasets.records import FASHIONIQ_CATEGORIES

PAD, START, AND, END, UNK = range(5)
SPECIAL_TOKENS = ("<pad>", "<start>", "<and>", "<end>", "<unk>")
AND_TOKEN = SPECIAL_TOKENS[AND]
VOCAB_DATASETS = ("fashioniq", "cirr", "shoes", "fashion200k", "mit_states", "custom")
# words the reference adds after the special tokens, before the caption words
LEADING_WORDS: dict[str, tuple[str, ...]] = {"fashion200k": ("replace", "with")}
FORMAT = "coir.word_vocabulary"
TOKENIZERS = ("artemis", "tirg")
TIRG_SPECIAL_TOKENS = ("<UNK>",)
_TIRG_PUNCTUATION = str.maketrans("", "", string.punctuation)

# cleanCaption: "/", "-" and "\" become spaces, then everything but ASCII letters, spaces and
# parentheses is dropped (the reference's class `[^(a-zA-Z)\ ]` keeps "(" and ")"; tabs and
# newlines are dropped too, not turned into spaces).
_SEPARATORS = re.compile(r"[/\-\\]")
_DROPPED = re.compile(r"[^()a-zA-Z ]")
_PARENS = re.compile(r"([()])")
# On text of letters, spaces and parentheses, NLTK's word tokenizer only splits parentheses off
# and splits these words (its CONTRACTIONS2 rules; the others need an apostrophe, already dropped).
# "cannot" occurs in the real captions: a plain whitespace split would disagree with the reference.
_NLTK_SPLITS = {
    "cannot": ("can", "not"),
    "gimme": ("gim", "me"),
    "gonna": ("gon", "na"),
    "gotta": ("got", "ta"),
    "lemme": ("lem", "me"),
    "wanna": ("wan", "na"),
}


def clean_caption(text: str) -> list[str]:
    """One caption -> its words, as the reference's `word_tokenize(cleanCaption(text).lower())`.

    No NLTK model files are needed (word_tokenize's sentence splitter needs punkt's): after the
    clean-up only letters, spaces and parentheses remain, and on those NLTK's tokenizer reduces to
    the rules applied here (tests/test_vocab.py checks it on every real val caption)."""
    text = _DROPPED.sub("", _SEPARATORS.sub(" ", text)).lower()
    words: list[str] = []
    for token in _PARENS.sub(r" \1 ", text).split():
        words.extend(_NLTK_SPLITS.get(token, (token,)))
    return words


def tirg_tokens(text: str) -> list[str]:
    """TIRG's `SimpleVocab.tokenize_text`: ASCII only, lower case, punctuation removed, whitespace split."""
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    return text.translate(_TIRG_PUNCTUATION).split()


def special_tokens(tokenizer: str) -> tuple[str, ...]:
    if tokenizer not in TOKENIZERS:
        raise ConfigError(f"vocabulary tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")
    return TIRG_SPECIAL_TOKENS if tokenizer == "tirg" else SPECIAL_TOKENS


class Vocabulary:
    """Word <-> id. With the artemis tokenizer (default) ids 0..4 are `<pad> <start> <and> <end> <unk>`,
    with the tirg tokenizer id 0 is `<UNK>`; words follow in the given order.

    Plain Python data, so it pickles into DataLoader workers with the processor."""

    def __init__(self, words: Iterable[str] = (), tokenizer: str = "artemis") -> None:
        self.tokenizer = tokenizer
        self.special_tokens = special_tokens(tokenizer)
        self.unk = 0 if tokenizer == "tirg" else UNK
        self._words: list[str] = list(self.special_tokens)
        self._ids: dict[str, int] = {token: i for i, token in enumerate(self.special_tokens)}
        for word in words:
            if word in self._ids:
                raise ValueError(f"word {word!r} given twice (or is a special token)")
            self._ids[word] = len(self._words)
            self._words.append(word)

    @classmethod
    def from_captions(
        cls,
        captions: Iterable[str],
        threshold: int = 0,
        leading: Sequence[str] = (),
        tokenizer: str = "artemis",
    ) -> Vocabulary:
        """artemis: `leading` words first, then every word seen at least `threshold` times (0 or 1:
        every word), in order of first appearance, as the reference's Counter does. tirg: the same
        words (leading ones included) in sorted order, as SimpleVocab.build."""
        tokenize = tirg_tokens if tokenizer == "tirg" else clean_caption
        counts: Counter[str] = Counter()
        for caption in captions:
            counts.update(tokenize(caption))
        words = [word for word, count in counts.items() if count >= threshold and word not in leading]
        if tokenizer == "tirg":
            return cls(sorted({*leading, *words}), tokenizer)
        return cls([*leading, *words], tokenizer)

    @property
    def words(self) -> list[str]:
        """Every entry in id order, special tokens included (a copy)."""
        return list(self._words)

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return word in self._ids

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Vocabulary)
            and self.tokenizer == other.tokenizer
            and self._words == other._words
        )

    def __repr__(self) -> str:
        return (
            f"Vocabulary({len(self)} entries: {len(self.special_tokens)} special tokens + {self.num_words} "
            f"words, {self.tokenizer} tokenizer)"
        )

    @property
    def num_words(self) -> int:
        """Entries that are not special tokens."""
        return len(self._words) - len(self.special_tokens)

    def id(self, word: str) -> int:
        return self._ids.get(word, self.unk)

    def word(self, index: int) -> str:
        return self._words[index]

    def encode(self, text: str) -> list[int]:
        """Word ids of a text (unknown words -> <unk>). A literal `<and>` in the text maps to the
        <and> id, so a FashionIQ query "c1 <and> c2" encodes as the reference joins two captions.
        tirg: TIRG's tokens (a literal "<and>" is the word "and")."""
        if self.tokenizer == "tirg":
            return [self._ids.get(word, self.unk) for word in tirg_tokens(text)]
        ids: list[int] = []
        for i, part in enumerate(text.split(AND_TOKEN)):
            if i:
                ids.append(AND)
            ids.extend(self._ids.get(word, UNK) for word in clean_caption(part))
        return ids

    def encode_query(self, text: str | Sequence[str]) -> list[int]:
        """<start> + words + <end>, as the reference's dataset `get_transformed_captions`. A list
        of captions is joined with <and> (FashionIQ's two captions); so is a text holding "<and>".
        tirg: the words alone, and [<UNK>] for a text without words (its LSTM needs one step)."""
        if not isinstance(text, str):
            text = f" {AND_TOKEN} ".join(text)
        if self.tokenizer == "tirg":
            return self.encode(text) or [self.unk]
        return [START, *self.encode(text), END]

    def truncate(self, ids: list[int], max_length: int) -> list[int]:
        """encode_query's ids cut to max_length: artemis keeps <end> last, tirg the first words."""
        if len(ids) <= max_length:
            return ids
        return ids[:max_length] if self.tokenizer == "tirg" else [*ids[: max_length - 1], END]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self._words[i] for i in ids]

    def save(self, path: str | Path) -> Path:
        """JSON {"format", "version", "tokenizer", "words": every entry in id order}; atomic write."""
        data = {"format": FORMAT, "version": 1, "tokenizer": self.tokenizer, "words": self._words}
        return write_json_atomic(path, data, indent=1)

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        path = Path(path)
        data = load_json(path, "vocabulary file")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataFormatError(path, f"not a word vocabulary (expected an object with format {FORMAT!r})")
        tokenizer = data.get("tokenizer", "artemis")  # files written before the tirg tokenizer lack it
        if tokenizer not in TOKENIZERS:
            raise DataFormatError(
                path, f"must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}", field="tokenizer"
            )
        specials = special_tokens(tokenizer)
        words = data.get("words")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DataFormatError(path, "expected a list of strings", field="words")
        if tuple(words[: len(specials)]) != specials:
            raise DataFormatError(
                path, f"the first entries must be {' '.join(specials)}, got {words[:5]}", field="words"
            )
        duplicates = sorted(w for w, n in Counter(words).items() if n > 1)
        if duplicates:
            raise DataFormatError(path, f"duplicate entries: {duplicates[:10]}", field="words")
        return cls(words[len(specials) :], tokenizer)


def dataset_captions(dataset: str, root: str | Path, split: str = "train") -> list[str]:
    """The captions the reference builds its vocabulary from, in its reading order: FashionIQ
        cap.{dress,shirt,toptee}.{split}.json (per file all first captions, then all second ones),
        CIRR captions/cap.rc2.{split}.json, Shoes the split's entries of relative_captions_shoes.json (both
        images in {split}'s image list: the reference's triplet.train.json, in file order), Fashion200k the
        label files' descriptions, MIT-States every training image's "adjective noun" (TIRG's
    get_all_texts), custom the texts of a triplets JSONL file (`root`; the split is not used). The
    reference uses the training split only."""
    if dataset == "fashioniq":
        from coir.datasets.fashioniq import read_fashioniq_triplets

        captions: list[str] = []
        for category in FASHIONIQ_CATEGORIES:
            triplets = read_fashioniq_triplets(root, category, split)
            for k in range(max((len(t.captions) for t in triplets), default=0)):
                captions.extend(t.captions[k] for t in triplets if len(t.captions) > k)
        return captions
    if dataset == "cirr":
        from coir.datasets.cirr import read_cirr_triplets

        return [t.caption for t in read_cirr_triplets(root, split)]
    if dataset == "shoes":
        from coir.datasets.shoes import read_shoes_split

        return [t.caption for t in read_shoes_split(root, split).triplets]
    if dataset == "fashion200k":
        from coir.datasets.fashion200k import vocabulary_descriptions

        return vocabulary_descriptions(root, split)
    if dataset == "mit_states":
        from coir.datasets.mit_states import vocabulary_texts

        return vocabulary_texts(root, split)
    if dataset == "custom":  # root: the JSONL file of `coir data shards custom`; its well-formed lines
        from coir.datasets.shards.custom_set import read_custom_triplets

        return [record["text"] for record in read_custom_triplets(Path(root))[0]]
    raise ConfigError(f"vocabulary dataset must be one of {', '.join(VOCAB_DATASETS)}, got {dataset!r}")


def build_vocabulary(
    dataset: str, root: str | Path, split: str = "train", threshold: int = 0, tokenizer: str = "artemis"
) -> Vocabulary:
    """The vocabulary of `dataset`'s captions (train by default, as the references). The leading
    words are ARTEMIS's: TIRG's Fashion200k vocabulary has only the descriptions' words."""
    captions = dataset_captions(dataset, root, split)
    leading = LEADING_WORDS.get(dataset, ()) if tokenizer == "artemis" else ()
    return Vocabulary.from_captions(captions, threshold, leading, tokenizer)

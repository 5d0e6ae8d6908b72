"""The word vocabulary (coir.datasets.vocab) on the real FashionIQ / CIRR val captions."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from coir.common.errors import DataFormatError, MissingInputError
from coir.datasets.records import FASHIONIQ_CATEGORIES
from coir.datasets.vocab import (
    AND,
    END,
    SPECIAL_TOKENS,
    START,
    UNK,
    Vocabulary,
    build_vocabulary,
    clean_caption,
    dataset_captions,
)

nltk_tokenize = pytest.importorskip("nltk.tokenize")

# The reference's config.py cleanCaption, verbatim as a regex pair (for the agreement test only).
_REF_DROP = re.compile("[^(a-zA-Z)\\ ]")
_REF_SPACE = re.compile("[/\\-\\\\\\\\]")


def reference_tokens(caption: str) -> list[str]:
    """naver/artemis: word_tokenize(cleanCaption(caption).lower()), with the tokenizer word_tokenize
    applies after its (model-file) sentence splitter; the cleaned text has no sentence punctuation."""
    cleaned = " ".join(_REF_DROP.sub("", _REF_SPACE.sub(" ", caption)).split(" "))
    return nltk_tokenize.NLTKWordTokenizer().tokenize(cleaned.lower())


def real_captions(real_data: Path) -> list[str]:
    return dataset_captions("fashioniq", real_data / "fashioniq", "val") + dataset_captions(
        "cirr", real_data / "cirr", "val"
    )


def test_clean_caption_follows_the_reference_rules() -> None:
    assert clean_caption("Is Off-white/Beige\\Grey, 3-piece!") == [
        "is",
        "off",
        "white",
        "beige",
        "grey",
        "piece",
    ]
    assert clean_caption("has a (v-neck) collar") == ["has", "a", "(", "v", "neck", ")", "collar"]
    assert clean_caption("you cannot see it; gonna") == ["you", "can", "not", "see", "it", "gon", "na"]
    # non-ASCII letters and tabs are dropped, not turned into spaces (as the reference)
    assert clean_caption("it's café\tblue") == ["its", "cafblue"]
    assert clean_caption(" .,! ") == []
    for text in (
        "Is Off-white/Beige\\Grey, 3-piece!",
        "has a (v-neck) collar",
        "it's café\tblue",
        "wanna(gotta)",
    ):
        assert clean_caption(text) == reference_tokens(text)


def test_clean_caption_agrees_with_nltk_on_every_real_val_caption(real_data: Path) -> None:
    captions = real_captions(real_data)
    assert len(captions) == 2 * (2017 + 2038 + 1961) + 4181
    disagree = [c for c in captions if clean_caption(c) != reference_tokens(c)]
    assert disagree == []
    # the cases where a plain whitespace split would not do occur in the real captions
    assert any("cannot" in c.lower() for c in captions)
    assert any("(" in c for c in captions)


def test_vocabulary_on_real_fashioniq_val(real_data: Path) -> None:
    vocab = build_vocabulary("fashioniq", real_data / "fashioniq", "val")
    assert vocab.words[:5] == list(SPECIAL_TOKENS)
    assert [vocab.id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert len(vocab) == 2122 and vocab.num_words == 2117
    # same words and order as the reference's build_vocab (Counter over its reading order)
    counter: Counter[str] = Counter()
    for category in FASHIONIQ_CATEGORIES:
        rows = json.loads((real_data / "fashioniq" / "captions" / f"cap.{category}.val.json").read_text())
        for caption in [r["captions"][0] for r in rows] + [r["captions"][1] for r in rows]:
            counter.update(reference_tokens(caption))
    assert vocab.words[5:] == list(counter)
    assert vocab.words[5:7] == ["is", "shiny"]  # the first dress caption: "is shiny and silver ..."


def test_vocabulary_on_real_cirr_val_and_threshold(real_data: Path) -> None:
    vocab = build_vocabulary("cirr", real_data / "cirr", "val")
    assert len(vocab) == 2961
    frequent = build_vocabulary("cirr", real_data / "cirr", "val", threshold=2)
    assert 5 < len(frequent) < len(vocab)
    assert set(frequent.words) < set(vocab.words)


def test_encode_unknown_and_the_and_token() -> None:
    vocab = Vocabulary(["is", "red", "has", "long", "sleeves"])
    red, sleeves = vocab.id("red"), vocab.id("sleeves")
    assert vocab.encode("Is RED, has purple sleeves") == [5, red, 7, UNK, sleeves]
    assert vocab.encode("is red <and> has long sleeves") == [5, red, AND, 7, 8, sleeves]
    query = vocab.encode_query("is red <and> has long sleeves")
    assert query == [START, 5, red, AND, 7, 8, sleeves, END]
    assert vocab.encode_query(["is red", "has long sleeves"]) == query
    assert vocab.encode_query("") == [START, END]
    assert vocab.decode(query) == ["<start>", "is", "red", "<and>", "has", "long", "sleeves", "<end>"]
    with pytest.raises(ValueError, match="twice"):
        Vocabulary(["red", "red"])


def test_json_round_trip_and_bad_files(real_data: Path, tmp_path: Path) -> None:
    vocab = build_vocabulary("fashioniq", real_data / "fashioniq", "val")
    path = vocab.save(tmp_path / "sub" / "vocab.json")
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.words == vocab.words
    assert [p.name for p in path.parent.iterdir()] == ["vocab.json"]  # no temp file left behind

    def bad(name: str, content: str) -> Path:
        (tmp_path / name).write_text(content)
        return tmp_path / name

    good = json.loads(path.read_text())
    cases = {
        "broken.json": "{not json",
        "list.json": json.dumps(vocab.words),
        "order.json": json.dumps({**good, "words": ["<start>", "<pad>", *good["words"][2:]]}),
        "dup.json": json.dumps({**good, "words": [*good["words"], "is"]}),
        "types.json": json.dumps({**good, "words": [*good["words"], 3]}),
    }
    for name, content in cases.items():
        with pytest.raises(DataFormatError, match=re.escape(name)):
            Vocabulary.load(bad(name, content))
    with pytest.raises(MissingInputError, match="nowhere.json"):
        Vocabulary.load(tmp_path / "nowhere.json")


def test_vocabulary_pickles() -> None:
    import pickle

    vocab = Vocabulary(["a", "b"])
    again = pickle.loads(pickle.dumps(vocab))
    assert again == vocab and again.encode("b a c") == [6, 5, UNK]

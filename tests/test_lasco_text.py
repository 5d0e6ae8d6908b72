"""VQA answer normalisation, the rule rephraser and its coverage, the LM rephraser and its cache."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from coir.common.errors import ConfigError, MissingInputError
from coir.datasets.lasco.normalize import normalize_answer
from coir.datasets.lasco.rephrase import (
    LMRephraser,
    RuleRephraser,
    format_coverage,
    make_rephraser,
    rule_coverage,
    states_answer,
)
from coir.datasets.lasco.rules import prefix_of, prepare

# ------------------------------------------------------------------ normalisation (vqaEval.py)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Two", "2"),
        ("none", "0"),
        ("ten", "10"),
        ("eleven", "eleven"),  # the official map stops at ten
        ("a dog", "dog"),
        ("The Red Bus", "red bus"),
        ("an apple.", "apple"),
        ("dont", "don't"),
        ("isnt it", "isn't it"),
        ("Im", "im"),  # capitalised keys of the official table never match after lower-casing
        ("1,000", "1000"),  # digit,digit: every mark is deleted
        ("1,000 people, maybe", "1000 people maybe"),
        ("red,white", "red white"),  # comma without digits and not touching a space -> space
        ("red, white", "red white"),  # touching a space -> deleted
        ("t-shirt", "t shirt"),
        ("yes!", "yes"),
        ("2.5", "2.5"),  # a period before a digit stays
        ("u.s.a.", "usa"),
        ("  left\tside\n", "left side"),
        ("50%", "50%"),  # % is not in the official list
        ("(a) dog", "dog"),
        ("it's", "it's"),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


# ------------------------------------------------------------------ rule rephraser

EXAMPLES = [
    ("What color is the bus?", "red", "the bus is red"),
    ("Is the man wearing a hat?", "no", "the man is not wearing a hat"),
    ("Is the man wearing a hat?", "yes", "the man is wearing a hat"),
    ("How many dogs are there?", "3", "there are three dogs"),
    ("How many dogs are there?", "1", "there is one dog"),
    ("How many people are in the photo?", "1", "there is one person in the photo"),
    ("Is there a cat?", "no", "there is no cat"),
    ("Are there any people?", "no", "there are no people"),
    ("What is the man holding?", "umbrella", "the man is holding an umbrella"),
    ("Is this a cat or a dog?", "dog", "this is a dog"),
    ("Does the man have a hat?", "yes", "the man has a hat"),
    ("Does the man have a hat?", "no", "the man does not have a hat"),
    ("How many wheels does the bus have?", "4", "the bus has four wheels"),
    ("What is the table made of?", "wood", "the table is made of wood"),
    ("What sport is being played?", "tennis", "tennis is being played"),
    ("What is on the table?", "pizza", "there is pizza on the table"),
    ("What color shirt is the man wearing?", "red", "the man is wearing a red shirt"),
    ("Where is the cat?", "bed", "the cat is on the bed"),
    ("Can you see the ocean?", "no", "you cannot see the ocean"),
    ("Has the cake been cut?", "yes", "the cake has been cut"),
    ("What's the weather like?", "sunny", "the weather is sunny"),
]


@pytest.mark.parametrize(("question", "answer", "expected"), EXAMPLES)
def test_rule_examples(question: str, answer: str, expected: str) -> None:
    text = RuleRephraser().rephrase([(question, answer)])[0]
    assert text == expected
    assert states_answer(text, answer)


# One natural question per real question-type prefix, with a plausible answer.
PER_TYPE = {
    "how many": ("How many dogs are there?", "2"),
    "is the": ("Is the plate empty?", "no"),
    "what": ("What game are they playing?", "frisbee"),
    "what color is the": ("What color is the car?", "blue"),
    "what is the": ("What is the dog chasing?", "ball"),
    "is this": ("Is this pizza?", "yes"),
    "is this a": ("Is this a kitchen?", "no"),
    "what is": ("What is in his hand?", "phone"),
    "are the": ("Are the lights on?", "no"),
    "what kind of": ("What kind of dog is this?", "poodle"),
    "is there a": ("Is there a clock?", "yes"),
    "what type of": ("What type of food is on the plate?", "pizza"),
    "is it": ("Is it raining?", "no"),
    "what are the": ("What are the people doing?", "walking"),
    "where is the": ("Where is the cat?", "table"),
    "is there": ("Is there water in the glass?", "no"),
    "does the": ("Does the bus have a driver?", "yes"),
    "what color are the": ("What color are the flowers?", "yellow"),
    "are these": ("Are these bananas ripe?", "no"),
    "are there": ("Are there clouds in the sky?", "yes"),
    "which": ("Which hand is the man holding the racket with?", "left"),
    "is": ("Is anyone swimming?", "no"),
    "what is the man": ("What is the man eating?", "sandwich"),
    "is the man": ("Is the man smiling?", "yes"),
    "are": ("Are people walking on the street?", "yes"),
    "how": ("How is the weather?", "sunny"),
    "does this": ("Does this bus have two levels?", "no"),
    "what is on the": ("What is on the table?", "laptop"),
    "what does the": ("What does the sign say?", "stop"),
    "how many people are": ("How many people are sitting?", "4"),
    "what is in the": ("What is in the bowl?", "apples"),
    "what is this": ("What is this animal?", "zebra"),
    "do": ("Do the people look happy?", "yes"),
    "what are": ("What are they holding?", "umbrellas"),
    "are they": ("Are they playing tennis?", "no"),
    "what time": ("What time of day is it?", "morning"),
    "what sport is": ("What sport is being played?", "baseball"),
    "are there any": ("Are there any people?", "no"),
    "is he": ("Is he wearing glasses?", "yes"),
    "what color is": ("What color is his shirt?", "green"),
    "why": ("Why are the kids laughing?", "joke"),
    "where are the": ("Where are the people standing?", "beach"),
    "what color": ("What color hat does the man have?", "black"),
    "who is": ("Who is holding the umbrella?", "woman"),
    "what animal is": ("What animal is this?", "giraffe"),
    "is the woman": ("Is the woman sitting?", "no"),
    "is this an": ("Is this an airport?", "yes"),
    "do you": ("Do you see any cars?", "no"),
    "how many people are in": ("How many people are in the picture?", "1"),
    "what room is": ("What room is this?", "kitchen"),
    "has": ("Has the cake been cut?", "no"),
    "is this person": ("Is this person skiing?", "yes"),
    "what is the woman": ("What is the woman holding?", "bag"),
    "can you": ("Can you see the mountains?", "yes"),
    "why is the": ("Why is the road wet?", "rain"),
    "is the person": ("Is the person surfing?", "no"),
    "what is the color of the": ("What is the color of the car?", "white"),
    "what is the person": ("What is the person riding?", "horse"),
    "could": ("Could this be a hotel?", "no"),
    "was": ("Was the photo taken at night?", "yes"),
    "is that a": ("Is that a dog?", "no"),
    "what number is": ("What number is on the bus?", "12"),
    "what is the name": ("What is the name of the street?", "main"),
    "what brand": ("What brand is the laptop?", "apple"),
    "none of the above": ("When was this photo taken?", "night"),
}


def test_coverage_over_real_question_types(real_data: Path) -> None:
    types = [t.strip() for t in (real_data / "vqa" / "mscoco_question_types.txt").read_text().splitlines()]
    types = [t for t in types if t]
    assert len(types) == 65
    report = rule_coverage(types)
    assert report["total"] == 65 and report["dedicated"] == 65 and report["fallback"] == []
    assert set(report["rules"]) == set(types)
    assert "65/65" in format_coverage(report)
    partial = rule_coverage([*types, "what shape"])
    assert partial["fallback"] == ["what shape"] and partial["dedicated"] == 65
    assert set(PER_TYPE) == set(types)  # every real prefix has an example below


@pytest.mark.parametrize("qtype", sorted(PER_TYPE))
def test_each_question_type_uses_its_rule(qtype: str) -> None:
    question, answer = PER_TYPE[qtype]
    words, _ = prepare(question, answer)
    if qtype != "none of the above":
        assert prefix_of(words) == qtype  # the example really is of that type
    rephraser = RuleRephraser()
    text = rephraser.rephrase([(question, answer)])[0]
    assert "fallback" not in rephraser.stats, (question, text)
    assert text and "answer to" not in text
    assert states_answer(text, answer), (question, answer, text)
    assert text != question.lower().rstrip("?")


def test_fallback_and_states_answer() -> None:
    rephraser = RuleRephraser()
    text = rephraser.rephrase([("Name the object.", "kite")])[0]
    assert text == "the answer to 'name the object.' is kite" and rephraser.stats["fallback"] == 1
    assert states_answer("there are three dogs", "3") and not states_answer("there are two dogs", "3")
    assert states_answer("the man is not wearing a hat", "no")
    assert not states_answer("the man is wearing a hat", "no")
    assert states_answer("the man is wearing a hat", "yes")
    assert states_answer("he wears a t-shirt", "T shirt") and not states_answer("a redish bus", "red")
    assert make_rephraser("rule").rephrase([("Is it?", "")]) == [None]  # nothing to state
    with pytest.raises(ConfigError):
        make_rephraser("gpt")


# ------------------------------------------------------------------ LM rephraser with a tiny random model


def _tiny_tokenizer(out: Path):
    """A word-level tokenizer trained on a few sentences, saved into `out`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    sentences = [
        "Rewrite the question and its answer as one short statement about the image.",
        "Question: what color is the bus? Answer: red Statement: the bus is red",
        "how many dogs are there 3 three is the man wearing a hat no not",
    ]
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(
        sentences, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[EOS]"])
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]"
    )
    fast.save_pretrained(out)
    return fast


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer GPT-2 with random weights (causal LM path)."""
    torch = pytest.importorskip("torch")
    from transformers import GPT2Config, GPT2LMHeadModel

    out = tmp_path_factory.mktemp("tiny_lm") / "tiny-gpt2"
    fast = _tiny_tokenizer(out)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(fast),
        n_embd=16,
        n_layer=1,
        n_head=2,
        n_positions=128,
        bos_token_id=fast.eos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(out)
    return out


def test_lm_rephraser_seq2seq(tmp_path: Path) -> None:
    """The encoder-decoder path: a 1-layer T5 with random weights."""
    torch = pytest.importorskip("torch")
    from transformers import T5Config, T5ForConditionalGeneration

    out = tmp_path / "tiny-t5"
    fast = _tiny_tokenizer(out)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(fast),
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        decoder_start_token_id=fast.pad_token_id,
    )
    T5ForConditionalGeneration(config).save_pretrained(out)
    lm = LMRephraser(out, tmp_path / "cache.jsonl", batch_size=2, max_new_tokens=4)
    texts = lm.rephrase(PAIRS[:3])
    assert lm._seq2seq and lm.batches_run == 2
    assert all(states_answer(t, a) for t, (_, a) in zip(texts, PAIRS, strict=False))
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 3


PAIRS = [
    ("What color is the bus?", "red"),
    ("How many dogs are there?", "3"),
    ("Is the man wearing a hat?", "no"),
    ("What color is the bus?", "red"),  # a repeat is generated once
    ("Is there a cat?", "no"),
    ("What is the man holding?", "umbrella"),
]


def test_lm_rephraser_batches_caches_and_never_recomputes(tiny_lm: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_lm, model_dir)
    cache = tmp_path / "cache" / "rephrase_cache.jsonl"
    lm = make_rephraser("lm", model_dir=model_dir, cache_path=cache, batch_size=2, max_new_tokens=6)
    assert isinstance(lm, LMRephraser)
    texts = lm.rephrase(PAIRS)
    assert lm.batches_run == 3  # 5 distinct pairs in batches of 2
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    assert [(r["question"], r["answer"]) for r in rows] == list(dict.fromkeys(PAIRS))
    assert all(r["model"] == "model" and r["key"] == lm.cache_key for r in rows)
    assert all(isinstance(r["generation"], str) for r in rows)
    # random weights give gibberish that does not state the answer: every text falls back to the rules
    rules = RuleRephraser().rephrase(PAIRS)
    assert texts == [
        g if states_answer(g, a) else r for g, r, (_, a) in zip(texts, rules, PAIRS, strict=True)
    ]
    assert all(states_answer(t, a) for t, (_, a) in zip(texts, PAIRS, strict=True))
    assert sum(lm.stats.values()) == len(PAIRS)

    again = LMRephraser(model_dir, cache, batch_size=2, max_new_tokens=6)  # a rerun never loads the model
    assert again.rephrase(PAIRS) == texts and again.batches_run == 0 and again._model is None
    weights = next(model_dir.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert LMRephraser(model_dir, cache, max_new_tokens=6).cache_key != lm.cache_key  # other weights
    assert LMRephraser(model_dir, cache, max_new_tokens=7).cache_key != again.cache_key
    shutil.rmtree(model_dir)
    with pytest.raises(MissingInputError, match="language model folder"):
        LMRephraser(model_dir, cache, batch_size=2).rephrase([("Is it sunny?", "yes")])


class ScriptedLM(LMRephraser):
    """The LM path without a model: generate() returns prepared outputs and counts calls."""

    def __init__(self, outputs: dict[str, str], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.outputs = outputs
        self.prompts_seen: list[list[str]] = []

    def generate(self, prompts: list[str]) -> list[str]:
        self.prompts_seen.append(prompts)
        self.batches_run += 1
        return [next(v for k, v in self.outputs.items() if k in p) for p in prompts]


def test_lm_outputs_are_validated_and_torn_cache_lines_ignored(tmp_path: Path) -> None:
    outputs = {
        "bus": ' "The bus is red."\nQuestion: more',  # first line kept, quotes dropped
        "dogs": "",  # empty -> rules
        "hat": "the man is wearing a hat",  # contradicts the answer "no" -> rules
    }
    cache = tmp_path / "c.jsonl"
    lm = ScriptedLM(outputs, tmp_path / "no-model", cache, batch_size=8)
    pairs = [
        ("What color is the bus?", "red"),
        ("How many dogs are there?", "3"),
        ("Is the man wearing a hat?", "no"),
    ]
    assert lm.rephrase(pairs) == ["The bus is red.", "there are three dogs", "the man is not wearing a hat"]
    assert lm.batches_run == 1 and len(lm.prompts_seen[0]) == 3
    assert "Question: What color is the bus?" in lm.prompts_seen[0][0]
    assert lm.stats == {"lm": 1, "lm_fallback_rule": 2}
    with open(cache, "ab") as f:
        f.write(b'{"model": "no-model", "question": "Is it')  # a run killed mid-write
    lm2 = ScriptedLM({"cat": "there is no cat"}, tmp_path / "no-model", cache)
    assert lm2.rephrase([*pairs, ("Is there a cat?", "no")])[-1] == "there is no cat"
    assert lm2.batches_run == 1 and lm2.prompts_seen == [
        [lm2.prompt.format(question="Is there a cat?", answer="no")]
    ]
    lm3 = ScriptedLM({}, tmp_path / "no-model", cache)
    assert lm3.rephrase([("Is there a cat?", "no")]) == ["there is no cat"] and lm3.batches_run == 0


def test_lm_cache_misses_when_the_prompt_changes(tmp_path: Path) -> None:
    cache = tmp_path / "c.jsonl"
    pairs = [("What color is the bus?", "red")]
    first = ScriptedLM({"bus": "the bus is red"}, tmp_path / "no-model", cache)
    assert first.rephrase(pairs) == ["the bus is red"] and first.batches_run == 1
    same = ScriptedLM({"bus": "the bus is blue"}, tmp_path / "no-model", cache)
    assert same.rephrase(pairs) == ["the bus is red"] and same.batches_run == 0
    prompt = "Say it as a statement.\nQ: {question}\nA: {answer}\n"
    other = ScriptedLM({"bus": "a red bus"}, tmp_path / "no-model", cache, prompt=prompt)
    assert other.rephrase(pairs) == ["a red bus"] and other.batches_run == 1
    longer = ScriptedLM({"bus": "red it is"}, tmp_path / "no-model", cache, max_new_tokens=64)
    assert longer.rephrase(pairs) == ["red it is"] and longer.batches_run == 1

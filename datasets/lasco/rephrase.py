"""Transition text for LaSCo: (VQA question, target answer) -> modification text.

Two implementations of one interface: RuleRephraser (deterministic, the default; see rules.py) and
LMRephraser, which runs a local `transformers` model directory in batches and caches every output
on disk keyed by (model identity, prompt, max_new_tokens, question, answer), so a rerun never
recomputes it and a changed model or prompt never reuses a stale output. Generations that are empty,
too long or do not state the answer fall back to the rules.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

from coir.common.errors import ConfigError, MissingInputError
from coir.datasets.lasco.english import states_answer
from coir.datasets.lasco.rules import RuleRephraser, format_coverage, print_coverage, rule_coverage

__all__ = [
    "LMRephraser",
    "Rephraser",
    "RuleRephraser",
    "format_coverage",
    "make_rephraser",
    "print_coverage",
    "rule_coverage",
    "states_answer",
]

DEFAULT_PROMPT = (
    "Rewrite the question and its answer as one short statement about the image.\n"
    "Question: {question}\nAnswer: {answer}\nStatement:"
)
MAX_TEXT_CHARS = 200
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack")
IDENTITY_FILES = ("config.json", "generation_config.json")


class Rephraser(Protocol):
    def rephrase(self, pairs: list[tuple[str, str]]) -> list[str | None]:
        """(question, target answer) -> modification text stating the answer; None when it cannot."""
        ...


def generation_key(model_dir: Path, prompt: str, max_new_tokens: int) -> str:
    """What decides a greedy generation besides its input: the model (its resolved folder's config
    files, by content, and weight files, by size and mtime), the prompt template, max_new_tokens."""
    folder = model_dir.resolve()
    files: dict[str, object] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name in IDENTITY_FILES and path.is_file():
                files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif path.name.endswith(WEIGHT_SUFFIXES) and path.is_file():
                stat = path.stat()
                files[path.name] = [stat.st_size, stat.st_mtime_ns]
    identity = {"files": files, "prompt": prompt, "max_new_tokens": max_new_tokens}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def clean_generation(text: str) -> str:
    """First line of a generation, whitespace collapsed, surrounding quotes dropped."""
    line = text.strip().split("\n", 1)[0] if text.strip() else ""
    return " ".join(line.split()).strip("\"'` ")


class LMRephraser:
    """Batched generation with a local seq2seq or causal LM; outputs cached in a JSONL file.

    Cache lines: {"model": <model folder name>, "key": <cache_key>, "question", "answer", "generation"};
    only lines with this instance's key are used (see generation_key). A batch is
    appended with one write and fsync; a torn last line (a killed run) is ignored on load. The model
    is loaded only when some pair is not in the cache.
    """

    name = "lm"

    def __init__(
        self,
        model_dir: str | Path,
        cache_path: str | Path,
        batch_size: int = 32,
        max_new_tokens: int = 32,
        device: str = "cpu",
        prompt: str = DEFAULT_PROMPT,
        fallback: RuleRephraser | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"rephraser batch_size must be >= 1, got {batch_size}")
        self.model_dir = Path(model_dir)
        self.cache_path = Path(cache_path)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.prompt = prompt
        self.fallback = fallback or RuleRephraser()
        self.model_name = self.model_dir.name
        self.cache_key = generation_key(self.model_dir, prompt, max_new_tokens)
        self.stats: Counter[str] = Counter()
        self.batches_run = 0  # generate() calls made by this instance
        self._model: Any = None
        self._tokenizer: Any = None
        self._seq2seq = False
        self._cache: dict[tuple[str, str], str] = self._load_cache()

    # ------------------------------------------------------------------ cache

    def _load_cache(self) -> dict[tuple[str, str], str]:
        cache: dict[tuple[str, str], str] = {}
        if not self.cache_path.is_file():
            return cache
        with open(self.cache_path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # torn final line of an interrupted run
                try:
                    row = json.loads(line)
                    if row.get("key") == self.cache_key:
                        cache[(row["question"], row["answer"])] = str(row["generation"])
                except (json.JSONDecodeError, KeyError, AttributeError):
                    continue
        return cache

    def _append_cache(self, rows: list[dict[str, str]]) -> None:
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
        fd = os.open(self.cache_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn last line must not swallow this batch
                data = b"\n" + data
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ model

    def _load_model(self) -> None:
        if self._model is not None:
            return
        if not self.model_dir.is_dir():
            raise MissingInputError(self.model_dir, "language model folder")
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        config = AutoConfig.from_pretrained(self.model_dir, local_files_only=True)
        self._seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        if not self._seq2seq:
            tokenizer.padding_side = "left"  # generation continues right after each prompt
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ConfigError(f"tokenizer in {self.model_dir} has neither a pad nor an eos token")
            tokenizer.pad_token = tokenizer.eos_token
        auto = AutoModelForSeq2SeqLM if self._seq2seq else AutoModelForCausalLM
        self._model = auto.from_pretrained(self.model_dir, local_files_only=True).to(self.device).eval()
        self._tokenizer = tokenizer

    def generate(self, prompts: list[str]) -> list[str]:
        """One batch through the model (greedy, so the same inputs give the same text)."""
        import torch

        self._load_model()
        tok = self._tokenizer
        enc = tok(prompts, return_tensors="pt", padding=True).to(self.device)
        with torch.inference_mode():
            out = self._model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=tok.pad_token_id,
            )
        if not self._seq2seq:
            out = out[:, enc["input_ids"].shape[1] :]
        self.batches_run += 1
        return tok.batch_decode(out, skip_special_tokens=True)

    # ------------------------------------------------------------------ interface

    def _valid(self, text: str, question: str, answer: str) -> bool:
        return (
            bool(text)
            and len(text) <= MAX_TEXT_CHARS
            and text.lower().rstrip("?") != question.lower().rstrip("?")
            and states_answer(text, answer)
        )

    def rephrase(self, pairs: list[tuple[str, str]]) -> list[str | None]:
        missing = list(dict.fromkeys(p for p in pairs if p not in self._cache))
        if missing:
            from tqdm import tqdm

            starts = range(0, len(missing), self.batch_size)
            for start in tqdm(starts, desc="rephrase (lm)", unit="batch", disable=len(starts) < 2):
                batch = missing[start : start + self.batch_size]
                prompts = [self.prompt.format(question=q, answer=a) for q, a in batch]
                generations = self.generate(prompts)
                rows = [
                    {"model": self.model_name, "key": self.cache_key, "question": q, "answer": a}
                    | {"generation": g}
                    for (q, a), g in zip(batch, generations, strict=True)
                ]
                self._append_cache(rows)
                self._cache.update({(q, a): g for (q, a), g in zip(batch, generations, strict=True)})
        out: list[str | None] = []
        for q, a in pairs:
            text = clean_generation(self._cache[(q, a)])
            if self._valid(text, q, a):
                self.stats["lm"] += 1
                out.append(text)
            else:
                self.stats["lm_fallback_rule"] += 1
                out.append(self.fallback.rephrase_one(q, a))
        return out


def make_rephraser(kind: str = "rule", **kwargs: Any) -> Rephraser:
    """kind "rule" (no options) or "lm" (LMRephraser's arguments: model_dir, cache_path, …)."""
    if kind == "rule":
        if kwargs:
            raise ConfigError(f"the rule rephraser takes no options, got {sorted(kwargs)}")
        return RuleRephraser()
    if kind == "lm":
        return LMRephraser(**kwargs)
    raise ConfigError(f"rephraser kind must be 'rule' or 'lm', got {kind!r}")

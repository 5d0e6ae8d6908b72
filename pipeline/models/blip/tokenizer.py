"""A small BERT-style WordPiece tokenizer trained locally (no download), saved as a transformers dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coir.common.errors import ConfigError, MissingInputError

PAD, UNK, CLS, SEP, MASK, ENC = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[ENC]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP, MASK, ENC]  # [PAD] = 0, as BLIP's text config expects
BLIP_ENC_TOKEN_ID = 30523  # BLIP's bert-base vocab: 30522 word pieces + [DEC] + [ENC]


def train_wordpiece(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 1000) -> Path:
    """Train a lower-casing WordPiece tokenizer on `texts`; write a PreTrainedTokenizerFast dir to out_dir."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token=UNK))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=1)
    tok.train_from_iterator((str(t) for t in texts), trainer=trainer)
    cls_id, sep_id = tok.token_to_id(CLS), tok.token_to_id(SEP)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, cls_id), (SEP, sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        cls_token=CLS,
        sep_token=SEP,
        mask_token=MASK,
        additional_special_tokens=[ENC],
    )
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    fast.save_pretrained(str(tmp))
    if out.exists():  # save_pretrained writes several files: fill a temp dir, then swap it in
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, out)
    return out


def load_tokenizer(path: str | Path, key: str = "model.tokenizer") -> Any:
    """A tokenizer dir (from train_wordpiece or a Hugging Face BLIP checkpoint) -> fast tokenizer.
    A folder without tokenizer files is a ConfigError naming `key` (never transformers' fallback)."""
    from transformers import AutoTokenizer

    from coir.pipeline.models.loading import require_tokenizer_files

    path = Path(path)
    if not path.is_dir():
        raise MissingInputError(path, "tokenizer directory")
    require_tokenizer_files(path, key)
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load a tokenizer from {path}: {e}") from e


def enc_token_id(tokenizer: Any, vocab_size: int | None = None) -> int:
    """The id of BLIP's [ENC] token (replaces [CLS] for the image-grounded text encoder)."""
    tid = tokenizer.convert_tokens_to_ids(ENC)
    if tid is not None and tid != tokenizer.unk_token_id:
        return int(tid)
    if vocab_size is not None and vocab_size > BLIP_ENC_TOKEN_ID:
        return BLIP_ENC_TOKEN_ID  # BLIP checkpoints whose saved tokenizer omits the added [ENC]
    raise ConfigError(f"the tokenizer has no {ENC} token (needed as the image-grounded encoder token)")

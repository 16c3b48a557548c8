"""Text -> wordpieces with the model's own fast tokenizer, without running the model.

The collector uses `Tokenizer.encode` to check lengths and tokens before anything runs; the
model uses the same encodings to build its batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError


@dataclass(frozen=True, eq=False)
class Encoding:
    """One text, tokenized with ``[CLS]``/``[SEP]`` added.

    input_ids: int32 [token]; word_ids: the tokenizer's word index per token (None for special
    tokens); offsets: (start, end) characters into ``text`` ((0, 0) for special tokens).
    """

    text: str
    tokens: list[str]
    input_ids: np.ndarray
    word_ids: tuple[int | None, ...]
    offsets: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.tokens)


class Tokenizer:
    """The fast (Rust) tokenizer of a model folder."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self.hf = hf_tokenizer

    @property
    def mask_token(self) -> str:
        return self.hf.mask_token

    @property
    def unk_token_id(self) -> int:
        return self.hf.unk_token_id

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        """Tokenize every text (no truncation, no padding); order kept."""
        texts = [str(t) for t in texts]
        if not texts:
            return []
        batch = self.hf(texts, add_special_tokens=True, truncation=False, padding=False,
                        return_offsets_mapping=True, return_attention_mask=False,
                        return_token_type_ids=False, verbose=False)
        out = []
        for i, text in enumerate(texts):
            out.append(Encoding(
                text=text, tokens=list(batch.tokens(i)),
                input_ids=np.asarray(batch["input_ids"][i], dtype=np.int32),
                word_ids=tuple(batch.word_ids(i)),
                offsets=tuple((int(a), int(b)) for a, b in batch["offset_mapping"][i])))
        return out

    def decode_tokens(self, ids: Sequence[int]) -> list[str]:
        """Token strings for ids (e.g. the top predictions at a ``[MASK]``)."""
        return list(self.hf.convert_ids_to_tokens([int(i) for i in ids]))


def load_tokenizer(folder: Path) -> Tokenizer:
    """The fast tokenizer saved in ``folder`` (tokenizer.json or vocab.txt)."""
    folder = Path(folder)
    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        raise ModelFormatError(
            f"{folder}: no tokenizer (tokenizer.json or vocab.txt) beside config.json; save the "
            "tokenizer with the model (tokenizer.save_pretrained(folder)).")
    # Read tokenizer.json directly when there is one: AutoTokenizer would import torch (seconds
    # of start-up) only to pick a class. A folder with just vocab.txt gets BERT's WordPiece.
    try:
        if (folder / "tokenizer.json").is_file():
            from transformers import PreTrainedTokenizerFast as TokenizerClass
        else:
            from transformers import BertTokenizerFast as TokenizerClass
        hf = TokenizerClass.from_pretrained(str(folder), local_files_only=True)
    except Exception as error:
        raise ModelFormatError(f"{folder}: cannot load the tokenizer: {error}") from None
    if not getattr(hf, "is_fast", False):
        raise ModelFormatError(f"{folder}: only a slow tokenizer could be built; headprobe needs "
                               "a fast tokenizer for word ids and offsets (tokenizer.json).")
    return Tokenizer(hf)

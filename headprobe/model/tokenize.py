"""Text -> wordpieces with the model's own fast tokenizer, without running the model.

The collector uses `Tokenizer.encode` to check lengths and tokens before anything runs; the
model uses the same encodings to build its batches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError
from headprobe.runs import Encoding


class Tokenizer:
    """The model's fast (Rust) tokenizer: a `tokenizers.Tokenizer` with truncation and padding
    off, and the names of its mask and unknown tokens."""

    def __init__(self, backend: Any, *, mask_token: str = "[MASK]",
                 unk_token: str = "[UNK]") -> None:
        backend.no_truncation()
        backend.no_padding()
        self.backend = backend
        self.mask_token = mask_token
        self.unk_token = unk_token

    @property
    def unk_token_id(self) -> int | None:
        return self.backend.token_to_id(self.unk_token)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        """Tokenize every text (no truncation, no padding); order kept."""
        texts = [str(t) for t in texts]
        if not texts:
            return []
        return [Encoding(text=text, tokens=list(e.tokens),
                         input_ids=np.asarray(e.ids, dtype=np.int32),
                         word_ids=tuple(e.word_ids), offsets=tuple(e.offsets))
                for text, e in zip(texts, self.backend.encode_batch(texts,
                                                                    add_special_tokens=True))]

    def decode_tokens(self, ids: Sequence[int]) -> list[str]:
        """Token strings for ids (e.g. the top predictions at a ``[MASK]``)."""
        return [self.backend.id_to_token(int(i)) for i in ids]


class RememberingTokenizer:
    """A `Tokenizer` that keeps every text's `Encoding`, for a `headprobe check` session that
    tokenizes the same sentences at collection (lengths, unknown words), for the cache lookups
    and for the forward pass: each text is tokenized once. It holds one `Encoding` per distinct
    text seen, as many as the session's sentences; callers must not modify what it returns."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._seen: dict[str, Encoding] = {}

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        """As `Tokenizer.encode`, each distinct text tokenized once per instance."""
        texts = [str(t) for t in texts]
        new = [t for t in dict.fromkeys(texts) if t not in self._seen]
        if new:
            self._seen.update(zip(new, self.tokenizer.encode(new)))
        return [self._seen[t] for t in texts]

    @property
    def mask_token(self) -> str:
        return self.tokenizer.mask_token

    @property
    def unk_token(self) -> str:
        return self.tokenizer.unk_token

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def decode_tokens(self, ids: Sequence[int]) -> list[str]:
        return self.tokenizer.decode_tokens(ids)


def _special_token(folder: Path, name: str, default: str) -> str:
    """``name`` (e.g. ``mask_token``) from special_tokens_map.json, else tokenizer_config.json."""
    for file in ("special_tokens_map.json", "tokenizer_config.json"):
        try:
            value = json.loads((folder / file).read_text(encoding="utf-8")).get(name)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str) and value:
            return value
    return default


def load_tokenizer(folder: Path) -> Tokenizer:
    """The fast tokenizer saved in ``folder`` (tokenizer.json or vocab.txt)."""
    folder = Path(folder)
    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        raise ModelFormatError(
            f"{folder}: no tokenizer (tokenizer.json or vocab.txt) beside config.json; save the "
            "tokenizer with the model (tokenizer.save_pretrained(folder)).")
    # tokenizer.json is read by the `tokenizers` library itself, as transformers'
    # PreTrainedTokenizerFast would (importing transformers costs ~1 s of start-up, and
    # AutoTokenizer would import torch). A folder with just vocab.txt gets BERT's WordPiece,
    # built by transformers from vocab.txt and tokenizer_config.json.
    try:
        if (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer as RustTokenizer

            backend = RustTokenizer.from_file(str(folder / "tokenizer.json"))
        else:
            from transformers import BertTokenizerFast  # type: ignore[attr-defined]  # transformers 5: lazy alias

            hf = BertTokenizerFast.from_pretrained(str(folder), local_files_only=True)
            if not getattr(hf, "is_fast", False):
                raise ModelFormatError(
                    f"{folder}: only a slow tokenizer could be built; headprobe needs a fast "
                    "tokenizer for word ids and offsets (tokenizer.json).")
            backend = hf.backend_tokenizer
    except ModelFormatError:
        raise
    except Exception as error:
        raise ModelFormatError(f"{folder}: cannot load the tokenizer: {error}") from None
    return Tokenizer(backend, mask_token=_special_token(folder, "mask_token", "[MASK]"),
                     unk_token=_special_token(folder, "unk_token", "[UNK]"))

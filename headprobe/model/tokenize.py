"""Text -> tokens with the model's own fast tokenizer, without running the model.

The collector uses `Tokenizer.encode` to check lengths and tokens before anything runs; the
model uses the same encodings to build its batches.

Every family's tokenizer works the same way here (SPEC §7b): WordPiece (BERT, DistilBERT,
ELECTRA), byte-level BPE (RoBERTa) and SentencePiece Unigram or BPE (XLM-RoBERTa, ALBERT), read
from tokenizer.json. ``[MASK]`` written in a text is the model's mask token (``<mask>`` for
RoBERTa): it is replaced before tokenizing and the offsets are mapped back, so they always
point into the text as written. Words are the tokenizer's word ids; each token also gets a
readable label for figures (`Encoding.labels`): its characters in the text, without ``Ġ`` or
``▁`` (WordPiece tokens are shown as they are, ``##`` included).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError
from headprobe.runs import Encoding, SpecialNames

MASK_IN_TEXT = "[MASK]"


class Tokenizer:
    """The model's fast (Rust) tokenizer: a `tokenizers.Tokenizer` with truncation and padding
    off, and the names of its special tokens."""

    def __init__(self, backend: Any, *, mask_token: str = "[MASK]", unk_token: str = "[UNK]",
                 cls_token: str = "[CLS]", sep_token: str = "[SEP]") -> None:
        backend.no_truncation()
        backend.no_padding()
        self.backend = backend
        self.mask_token = mask_token
        self.unk_token = unk_token
        self.specials = SpecialNames(cls=cls_token, sep=sep_token, mask=mask_token,
                                     cls_id=backend.token_to_id(cls_token),
                                     sep_id=backend.token_to_id(sep_token),
                                     mask_id=backend.token_to_id(mask_token))
        self.wordpiece = type(backend.model).__name__ == "WordPiece"

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
        substituted = [substitute_masks(text, self.mask_token) for text in texts]
        encoded = self.backend.encode_batch([s for s, _ in substituted], add_special_tokens=True)
        out = []
        for text, (_, back), e in zip(texts, substituted, encoded):
            word_ids = tuple(e.word_ids)
            offsets = tuple(back(o) for o in e.offsets) if back is not None else tuple(e.offsets)
            if not self.wordpiece:  # '▁the' and 'Ġthe' may cover the space before the word
                offsets = tuple(_trimmed(text, o) if w is not None else o
                                for o, w in zip(offsets, word_ids))
            labels = None if self.wordpiece else readable_labels(text, e.tokens, offsets,
                                                                 word_ids)
            out.append(Encoding(text=text, tokens=list(e.tokens),
                                input_ids=np.asarray(e.ids, dtype=np.int32), word_ids=word_ids,
                                offsets=offsets, labels=labels, specials=self.specials))
        return out

    def decode_tokens(self, ids: Sequence[int]) -> list[str]:
        """Token strings for ids (e.g. the top predictions at a ``[MASK]``)."""
        return [self.backend.id_to_token(int(i)) for i in ids]

    def readable_tokens(self, ids: Sequence[int]) -> list[str]:
        """What to show for ids: WordPiece tokens as they are (``##ing``), other tokenizers'
        decoded text without the space a marker stands for (``Ġbook`` -> ``book``)."""
        if self.wordpiece:
            return self.decode_tokens(ids)
        return [self.backend.decode([int(i)], skip_special_tokens=False).strip()
                or self.backend.id_to_token(int(i)) for i in ids]


def substitute_masks(text: str, mask_token: str):
    """``(text with every [MASK] written as mask_token, map of offsets back)``; the map is None
    when nothing changed. The map takes ``(start, end)`` in the new text to the written text:
    a range inside a replaced mask covers the whole ``[MASK]``."""
    if mask_token == MASK_IN_TEXT or MASK_IN_TEXT not in text:
        return text, None
    parts = text.split(MASK_IN_TEXT)
    # (start in new text, start in old text) of each replaced mask
    spans = []
    new, old = 0, 0
    for part in parts[:-1]:
        new += len(part)
        old += len(part)
        spans.append((new, old))
        new += len(mask_token)
        old += len(MASK_IN_TEXT)
    grow = len(mask_token) - len(MASK_IN_TEXT)

    def position(at: int, end: bool) -> int:
        shift = 0
        for new_start, old_start in spans:
            if at < new_start or (end and at == new_start):
                break
            if at < new_start + len(mask_token) or (end and at == new_start + len(mask_token)):
                return old_start + (len(MASK_IN_TEXT) if end else 0)
            shift += grow
        return at - shift

    def back(offset: tuple[int, int]) -> tuple[int, int]:
        start, end = offset
        if start == end == 0:
            return offset
        return position(start, False), position(end, True)

    return mask_token.join(parts), back


def _trimmed(text: str, offset: tuple[int, int]) -> tuple[int, int]:
    """``offset`` without whitespace at either end (a token of spaces only: empty, at its
    end)."""
    start, end = offset
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def readable_labels(text: str, tokens: Sequence[str], offsets: Sequence[tuple[int, int]],
                    word_ids: Sequence[int | None]) -> tuple[str, ...]:
    """Per token: its characters in ``text`` (spaces trimmed), or for a special token, or one
    with no characters, the token without ``Ġ``/``▁`` markers; a token that is only a space
    marker shows as ``␣``."""
    labels = []
    for token, (start, end), word in zip(tokens, offsets, word_ids):
        core = token.replace("\u0120", " ").replace("\u2581", " ").strip()
        if not core:  # a token that is only a space marker
            labels.append("\u2423")
            continue
        shown = text[start:end].strip() if word is not None and end > start else ""
        labels.append(shown or core)
    return tuple(labels)


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
    def specials(self) -> SpecialNames:
        return self.tokenizer.specials

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def decode_tokens(self, ids: Sequence[int]) -> list[str]:
        return self.tokenizer.decode_tokens(ids)

    def readable_tokens(self, ids: Sequence[int]) -> list[str]:
        return self.tokenizer.readable_tokens(ids)


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


def load_tokenizer(folder: Path, family: Any = None) -> Tokenizer:
    """The fast tokenizer saved in ``folder``: tokenizer.json, else (for a family with
    ``wordpiece_vocab``, BERT's by default) WordPiece from vocab.txt, else whatever fast
    tokenizer transformers can build from the folder. The `Family`'s special tokens name those
    the tokenizer files do not."""
    from headprobe.model.families import bert

    folder = Path(folder)
    family = family if family is not None else bert.FAMILY
    specials = family.specials
    wordpiece = family.wordpiece_vocab and (folder / "vocab.txt").is_file()
    # tokenizer.json is read by the `tokenizers` library itself, as transformers'
    # PreTrainedTokenizerFast would (importing transformers costs ~1 s of start-up, and
    # AutoTokenizer would import torch).
    try:
        if (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer as RustTokenizer

            backend = RustTokenizer.from_file(str(folder / "tokenizer.json"))
        elif wordpiece:  # BERT's WordPiece, built by transformers from vocab.txt
            from transformers import BertTokenizerFast  # type: ignore[attr-defined]  # transformers 5: lazy alias

            backend = _fast_backend(BertTokenizerFast.from_pretrained(str(folder),
                                                                      local_files_only=True),
                                    folder)
        elif any((folder / name).is_file() for name in ("vocab.json", "spiece.model",
                                                         "sentencepiece.bpe.model")):
            from transformers import AutoTokenizer

            backend = _fast_backend(AutoTokenizer.from_pretrained(str(folder),
                                                                  local_files_only=True), folder)
        else:
            raise ModelFormatError(
                f"{folder}: no tokenizer (tokenizer.json, or vocab.txt for a WordPiece model) "
                "beside config.json; save the tokenizer with the model "
                "(AutoTokenizer.from_pretrained(...).save_pretrained(folder)).")
    except ModelFormatError:
        raise
    except Exception as error:
        raise ModelFormatError(f"{folder}: cannot load the tokenizer: {error}; save a "
                               f"tokenizer.json with the model "
                               f"(AutoTokenizer.from_pretrained(...).save_pretrained(folder))"
                               ) from None
    return Tokenizer(backend, mask_token=_special_token(folder, "mask_token", specials.mask),
                     unk_token=_special_token(folder, "unk_token", specials.unk),
                     cls_token=_special_token(folder, "cls_token", specials.cls),
                     sep_token=_special_token(folder, "sep_token", specials.sep))


def _fast_backend(hf: Any, folder: Path) -> Any:
    if not getattr(hf, "is_fast", False):
        raise ModelFormatError(
            f"{folder}: only a slow tokenizer could be built; headprobe needs a fast tokenizer "
            "for word ids and offsets (tokenizer.json).")
    return hf.backend_tokenizer

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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError
from headprobe.model.families import bert, read_config
from headprobe.model.modelfiles import (
    decode_model_text,
    parse_model_json,
    present,
    read_model_bytes,
    read_model_json,
    read_model_text,
)
from headprobe.runs import Encoding, SpecialNames

MASK_IN_TEXT = "[MASK]"


class Tokenizer:
    """The model's fast (Rust) tokenizer: a `tokenizers.Tokenizer` with truncation and padding
    off, and the names of its special tokens."""

    def __init__(self, backend: Any, *, mask_token: str = "[MASK]", unk_token: str = "[UNK]",
                 cls_token: str = "[CLS]", sep_token: str = "[SEP]",
                 source: str = "tokenizer", embedding_rows: int | None = None) -> None:
        backend.no_truncation()
        backend.no_padding()
        self.backend = backend
        self.mask_token = mask_token
        self.unk_token = unk_token
        self.source = source  # the file errors name
        self.embedding_rows = embedding_rows  # None: ids are not checked
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
        try:
            encoded = self.backend.encode_batch([s for s, _ in substituted],
                                                add_special_tokens=True)
        except Exception as error:  # the tokenizers library raises plain Exceptions
            raise ModelFormatError(f"{self.source}: the tokenizer fails on "
                                   f"{texts[0][:40]!r}...: {error}; save a working tokenizer "
                                   f"with the model") from None
        out = []
        for text, (_, back), e in zip(texts, substituted, encoded):
            input_ids = self._checked_ids(text, e)
            word_ids = tuple(e.word_ids)
            offsets = tuple(back(o) for o in e.offsets) if back is not None else tuple(e.offsets)
            if not self.wordpiece:  # '▁the' and 'Ġthe' may cover the space before the word
                offsets = tuple(_trimmed(text, o) if w is not None else o
                                for o, w in zip(offsets, word_ids))
            labels = None if self.wordpiece else readable_labels(text, e.tokens, offsets,
                                                                 word_ids)
            out.append(Encoding(text=text, tokens=list(e.tokens),
                                input_ids=input_ids, word_ids=word_ids,
                                offsets=offsets, labels=labels, specials=self.specials))
        return out

    def _checked_ids(self, text: str, encoding: Any) -> np.ndarray:
        """The encoding's ids as int32, each a row of the word embeddings (an id past them
        would be clamped to the last row by the lookup: a wrong number, never an error)."""
        ids = np.asarray(encoding.ids, dtype=np.int64)
        rows = self.embedding_rows
        if rows is not None and ids.size and int(ids.max()) >= rows:
            at = int(np.argmax(ids >= rows))
            raise ModelFormatError(
                f"{self.source}: token {encoding.tokens[at]!r} of {text[:40]!r} has id "
                f"{int(ids[at])}, past the model's word embeddings ({rows} rows, config.json "
                f"vocab_size); use the tokenizer saved with these weights")
        return ids.astype(np.int32)

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


SPECIAL_TOKEN_FILES = ("special_tokens_map.json", "tokenizer_config.json")
#: What transformers may read to build a tokenizer without tokenizer.json; they are read
#: within bounds and copied to a private folder that transformers then reads.
TRANSFORMERS_FILES = ("vocab.txt", "vocab.json", "merges.txt", "spiece.model",
                      "sentencepiece.bpe.model", "sentencepiece.model", "spm.model",
                      "added_tokens.json", *SPECIAL_TOKEN_FILES, "config.json")
#: Tokenizer files transformers converts to a fast tokenizer (spm.model: DeBERTa-v2/v3's).
_CONVERTIBLE = ("vocab.json", "spiece.model", "sentencepiece.bpe.model", "spm.model")


def _special_tokens(folder: Path, specials: Any) -> dict[str, str]:
    """``cls_token``, ``sep_token``, ``mask_token``, ``unk_token``: from
    special_tokens_map.json, else tokenizer_config.json, else the family's."""
    found: dict[str, str] = {}
    for file in reversed(SPECIAL_TOKEN_FILES):  # the first file wins
        path = folder / file
        if not present(path):
            continue
        content = read_model_json(path)
        for name in ("cls_token", "sep_token", "mask_token", "unk_token"):
            value = content.get(name) if isinstance(content, dict) else None
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str) and value:
                found[name] = value
    defaults = {"cls_token": specials.cls, "sep_token": specials.sep,
                "mask_token": specials.mask, "unk_token": specials.unk}
    return {**defaults, **found}


def load_tokenizer(folder: Path, family: Any = None, *,
                   embedding_rows: int | None = None) -> Tokenizer:
    """The fast tokenizer saved in ``folder``: tokenizer.json, else (for a family with
    ``wordpiece_vocab``, BERT's by default) WordPiece from vocab.txt, else whatever fast
    tokenizer transformers can build from the folder. The `Family`'s special tokens name those
    the tokenizer files do not. Every file is read within bounds (`headprobe.model.modelfiles`).

    ``embedding_rows``: the rows of the model's word embeddings (default: ``vocab_size`` of the
    folder's config.json, when it has one). A token id the tokenizer can produce past them is
    a `ModelFormatError` naming the tokenizer's file, now (`check_vocabulary`) and for every
    text encoded."""

    folder = Path(folder)
    family = family if family is not None else bert.FAMILY
    source, backend = _backend(folder, family)
    names = _special_tokens(folder, family.specials)
    if embedding_rows is None and present(folder / "config.json"):

        embedding_rows = read_config(folder).vocab_size
    tokenizer = Tokenizer(backend, **names, source=str(source), embedding_rows=embedding_rows)
    check_vocabulary(tokenizer)
    return tokenizer


def _backend(folder: Path, family: Any) -> tuple[Path, Any]:
    """(the file the tokenizer comes from, its `tokenizers.Tokenizer`)."""
    # tokenizer.json is read by the `tokenizers` library itself, as transformers'
    # PreTrainedTokenizerFast would (importing transformers costs ~1 s of start-up, and
    # AutoTokenizer would import torch).
    tokenizer_json = folder / "tokenizer.json"
    if present(tokenizer_json):
        text = read_model_text(tokenizer_json)
        from tokenizers import Tokenizer as RustTokenizer

        try:
            return tokenizer_json, RustTokenizer.from_str(text)
        except Exception as error:
            raise ModelFormatError(f"{tokenizer_json}: cannot load the tokenizer: "
                                   f"{str(error)[:300]}; save a tokenizer.json with the model "
                                   f"(AutoTokenizer.from_pretrained(...).save_pretrained("
                                   f"folder))") from None
    if family.wordpiece_vocab and present(folder / "vocab.txt"):
        return folder / "vocab.txt", _through_transformers(folder, folder / "vocab.txt")
    for name in _CONVERTIBLE:
        if present(folder / name):
            return folder / name, _through_transformers(folder, folder / name)
    raise ModelFormatError(
        f"{folder}: no tokenizer (tokenizer.json, or vocab.txt for a WordPiece model) "
        "beside config.json; save the tokenizer with the model "
        "(AutoTokenizer.from_pretrained(...).save_pretrained(folder)).")


def _through_transformers(folder: Path, source: Path) -> Any:
    """The fast tokenizer transformers builds from the folder's tokenizer files (WordPiece from
    vocab.txt: BertTokenizerFast; others: AutoTokenizer), each read within bounds and copied
    to a private folder first, so that transformers reads nothing else."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="headprobe-tokenizer-") as private:
        for name in TRANSFORMERS_FILES:
            if present(folder / name):
                data = read_model_bytes(folder / name)
                if name.endswith(".json"):
                    parse_model_json(decode_model_text(data, folder / name), folder / name)
                (Path(private) / name).write_bytes(data)
        try:
            if source.name == "vocab.txt":  # BERT's WordPiece, built by transformers
                from transformers import BertTokenizerFast  # type: ignore[attr-defined]  # transformers 5: lazy alias

                built = BertTokenizerFast.from_pretrained(private, local_files_only=True)
            else:
                from transformers import AutoTokenizer

                built = AutoTokenizer.from_pretrained(private, local_files_only=True)
        except Exception as error:
            raise ModelFormatError(f"{source}: cannot load the tokenizer: {str(error)[:300]}; "
                                   f"save a tokenizer.json with the model "
                                   f"(AutoTokenizer.from_pretrained(...).save_pretrained("
                                   f"folder))") from None
    return _fast_backend(built, folder)


def check_vocabulary(tokenizer: Tokenizer) -> None:
    """The tokenizer can encode text into rows of the model's word embeddings: its vocabulary
    is not empty, a WordPiece vocabulary has its unknown token, and no id it can produce (its
    vocabulary's, its added and special tokens', those its post-processor inserts) is past
    ``embedding_rows``. Errors name the tokenizer's file."""
    backend, source = tokenizer.backend, tokenizer.source
    if backend.get_vocab_size(with_added_tokens=False) == 0:  # the model's own, not added ones
        raise ModelFormatError(f"{source}: the tokenizer's vocabulary is empty; save the "
                               f"tokenizer the model was trained with")
    unknown = getattr(backend.model, "unk_token", None)
    if tokenizer.wordpiece and backend.model.token_to_id(str(unknown)) is None:
        raise ModelFormatError(f"{source}: the WordPiece vocabulary has no unknown token "
                               f"{unknown!r}, which every word it cannot spell becomes; save the "
                               f"tokenizer the model was trained with")
    rows = tokenizer.embedding_rows
    if rows is None:
        return
    vocabulary = backend.get_vocab(with_added_tokens=True)  # 50 ms for 30,000 tokens
    if max(vocabulary.values()) >= rows:
        token, top = max(vocabulary.items(), key=lambda item: item[1])
        raise ModelFormatError(
            f"{source}: token {token!r} has id {top}, past the model's word embeddings ({rows} "
            f"rows, config.json vocab_size): this tokenizer belongs to another model; use the "
            f"tokenizer saved with these weights")
    # The ids a post-processor adds ([CLS], [SEP]), checked on one probe text straight through
    # the backend: `Tokenizer.encode` is what callers use (and count) for their sentences.
    try:
        probe = backend.encode("a", add_special_tokens=True)
    except Exception as error:  # the tokenizers library raises plain Exceptions
        raise ModelFormatError(f"{source}: the tokenizer fails on 'a': {error}; save a working "
                               f"tokenizer with the model") from None
    tokenizer._checked_ids("a", probe)


def _fast_backend(hf: Any, folder: Path) -> Any:
    if not getattr(hf, "is_fast", False):
        raise ModelFormatError(
            f"{folder}: only a slow tokenizer could be built; headprobe needs a fast tokenizer "
            "for word ids and offsets (tokenizer.json).")
    return hf.backend_tokenizer

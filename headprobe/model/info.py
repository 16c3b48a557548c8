"""What collection needs to know about a model, without JAX: its size and its tokenizer.

`inspect_model` resolves a spec (SPEC §7; an ONNX export, SPEC §15, has its graph read and its
heads placed instead of its weights checked), reads config.json, finds the weight files and checks
config.json against their shapes (safetensors headers only: no weight is read) and loads the
fast tokenizer (its ids within the word embeddings), so that a model without usable weights, or
whose files disagree, is a usage error, and heads out of range, sentences longer than the model
takes and unknown tokens are collection errors, all reported before anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headprobe.claims.spec import Sentence
from headprobe.errors import ClaimFileError
from headprobe.model.checkpoint import find_weights, transformer_folder, weight_shapes
from headprobe.model.export.locate import ExportFiles, locate
from headprobe.model.families import family_of, read_config
from headprobe.model.resolve import resolve
from headprobe.model.tokenize import RememberingTokenizer, load_tokenizer
from headprobe.model.weights import check_weights, has_mlm_head


@dataclass
class ModelInfo:
    """``folder``: where config.json and the tokenizer are; ``location``: what is hashed and
    loaded (that folder, or an ONNX export's file); ``export``: the export's files, or None
    for a checkpoint."""

    spec: str
    folder: Path
    num_layers: int
    num_heads: int
    max_length: int
    tokenizer: Any = field(repr=False)
    has_mlm_head: bool | None = None  # None: not known before the weights are read (Flax)
    export: ExportFiles | None = None
    kind: str = "checkpoint"
    #: per layer, how far its heads reach each side (local layers; None: the whole sentence)
    windows: tuple[int | None, ...] | None = None

    @property
    def location(self) -> Path:
        return self.folder if self.export is None else self.export.graph

    @property
    def measures_outputs(self) -> bool:
        """Whether SPEC §14's output measures can be had (not from an export)."""
        return self.export is None

    def check_sentences(self, sentences: Sequence[Sentence], *, file: str, set_name: str,
                        line: int | None, allow_unknown: bool = False) -> int:
        """Every sentence fits the model, keeps a token, and has no word the vocabulary cannot
        spell (unless ``allow_unknown``); returns how many sentences have such words."""
        if not sentences:
            return 0
        with_unknown = 0
        encodings = self.tokenizer.encode([s.text for s in sentences])
        for sentence, encoding in zip(sentences, encodings):
            ids, offsets = encoding.input_ids, encoding.offsets
            where = sentence.origin or f"set {set_name!r}"
            line = _own_line(sentence.origin, file) or line
            if len(ids) > self.max_length:
                raise ClaimFileError(
                    f"sentence {sentence.text[:80]!r} ({where}) is {len(ids)} tokens long with "
                    f"its special tokens; {self.spec} takes at most {self.max_length}. Shorten or "
                    f"split it.", file=file, line=line, field=f"sentences.{set_name}")
            if all(w is None for w in encoding.word_ids):
                raise ClaimFileError(
                    f"sentence {sentence.text[:80]!r} ({where}) has no token besides its special "
                    f"tokens: the tokenizer of {self.spec} drops every character of it. Write "
                    f"some text, or remove it.", file=file, line=line,
                    field=f"sentences.{set_name}")
            unk = self.tokenizer.unk_token
            unknown = [sentence.text[a:b] for tok, (a, b) in
                       zip(encoding.tokens, offsets)
                       if tok == unk and sentence.text[a:b] != unk]
            if unknown and allow_unknown:
                with_unknown += 1
            elif unknown:
                raise ClaimFileError(
                    f"sentence {sentence.text[:80]!r} ({where}) has {len(unknown)} word(s) the "
                    f"vocabulary of {self.spec} cannot spell (they become {unk}): "
                    f"{', '.join(repr(u) for u in unknown)}. Replace them or drop the sentence "
                    f"(or allow such words for the whole file with 'unknown_words: allow').",
                    file=file, line=line, field=f"sentences.{set_name}")
        return with_unknown


def _own_line(origin: str, file: str) -> int | None:
    """The line of an inline sentence (origin ``FILE:LINE`` of this very file), else None."""
    prefix = f"{file}:"
    if origin.startswith(prefix) and origin[len(prefix):].isdigit():
        return int(origin[len(prefix):])
    return None


def inspect_model(spec: str, *, tokenizer: str | None = None) -> ModelInfo:
    """Resolve ``spec`` and read its config and tokenizer (``tokenizer``: where an ONNX
    export's come from, SPEC §15); raises ModelNotFoundError/FormatError."""
    location = resolve(spec).folder
    export = locate(location, tokenizer)
    if export is not None:
        return _inspect_export(spec, export)
    folder = transformer_folder(location)
    config = read_config(folder)
    # A folder without weights we can read, or weights config.json does not describe, is a
    # usage error now, not later (a Flax msgpack's shapes are checked when it is read).
    weights = find_weights(folder)
    shapes = weight_shapes(weights)
    if shapes is not None:
        check_weights(shapes, config, source=str(weights.files[0]))
    return ModelInfo(spec=spec, folder=folder, num_layers=config.num_hidden_layers,
                     num_heads=config.num_attention_heads,
                     max_length=config.max_length,
                     has_mlm_head=None if shapes is None else has_mlm_head(shapes, config),
                     windows=config.windows,
                     tokenizer=RememberingTokenizer(load_tokenizer(
                         folder, family_of(config.model_type),
                         embedding_rows=config.vocab_size)))


def _inspect_export(spec: str, export: ExportFiles) -> ModelInfo:
    """An export's sizes from its config.json, its graph checked and its heads placed."""
    from headprobe.model.export.runner import read_export

    config = read_config(export.companion)
    _, placed, _ = read_export(export, config)
    return ModelInfo(spec=spec, folder=export.companion, num_layers=config.num_hidden_layers,
                     num_heads=config.num_attention_heads, max_length=config.max_length,
                     has_mlm_head=placed.logits is not None,
                     tokenizer=RememberingTokenizer(load_tokenizer(
                         export.companion, family_of(config.model_type),
                         embedding_rows=config.vocab_size)),
                     export=export, kind=f"ONNX export ({placed.kind})",
                     windows=config.windows)

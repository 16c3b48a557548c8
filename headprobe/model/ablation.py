"""Removing heads from a loaded model (SPEC §14.2): the host side of
`headprobe.model.encoder.effects` — which heads go together, the batches, the mean each removed
head's output is replaced by, and each sentence's effects.

A *variant* is a set of heads removed together: one per head (each removed alone), or one
holding every head of a claim (``together``). Sentences are packed into rows as for a forward
pass (`headprobe.model.packing`; a sentence packed with others gets what it gets alone), and each
batch runs one program that computes the clean pass once and then, for the variants whose lowest
layer is L, the layers from L up on V copies of the batch side by side. Memory is flat in the
number of sentences: a batch's effects are ``[rows, variant, token]``.

``ablation: mean`` replaces a head's context (its weighted values before the output projection,
so its output too: the projection is linear) by its mean over every token of the sentences given
(``[CLS]`` and ``[SEP]`` included, padding not), computed by a first pass; ``zero`` by zeros.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from headprobe.errors import UsageError, did_you_mean
from headprobe.model import packing
from headprobe.model.config import EncoderConfig
from headprobe.runs import Encoding

ABLATIONS = ("mean", "zero")
EFFECTS = ("hidden", "embedding", "kl")  # as `headprobe.model.encoder.EFFECTS` (no JAX here)
#: What one effects batch may hold on the device, about: every variant's activations. Small
#: batches run faster on CPU (their activations stay in cache): MiniLM's 72 heads on 100
#: sentences took 25.5 s at 192 MiB, 18-19 s at 24-48 MiB (docs/performance.md).
EFFECT_BATCH_BYTES = 32 << 20

Variants = tuple[tuple[tuple[int, int], ...], ...]


def variants_of(heads: Sequence[tuple[int, int]], together: bool) -> Variants:
    """The variants removing ``heads`` (0-based pairs): one per head, or one with all."""
    pairs = tuple(dict.fromkeys((int(layer), int(head)) for layer, head in heads))
    return (pairs,) if together else tuple((pair,) for pair in pairs)


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise UsageError(f"{name}: expected one of {', '.join(choices)}, got {value!r}"
                         f"{did_you_mean(str(value), choices)}")
    return value


def rows_per_batch(config: EncoderConfig, row_length: int, variants: Variants,
                   effect: str) -> int:
    """Rows per effects batch: what `EFFECT_BATCH_BYTES` allows for the largest group of
    variants run side by side (their attention, feed-forward and hidden activations, and with
    ``kl`` the vocabulary's logits)."""
    groups: dict[int, int] = {}
    for heads in variants:
        start = min(layer for layer, _ in heads)
        groups[start] = groups.get(start, 0) + 1
    side_by_side = max(groups.values())
    c = config
    per_row = side_by_side * row_length * (c.num_attention_heads * row_length
                                           + c.intermediate_size + 6 * c.hidden_size)
    if effect == "kl":  # the clean logits, and each variant's with its log-softmax
        per_row += (1 + 2 * side_by_side) * row_length * c.vocab_size
    return max(1, EFFECT_BATCH_BYTES // (4 * per_row))


def plan(config: EncoderConfig, lengths: Sequence[int], variants: Variants | None,
         effect: str) -> list[packing.PackedBatch]:
    """The packed batches of an effects (or, with ``variants`` None, a context-means) call."""
    if not lengths:
        return []
    row_length, rows = packing.choose_rows(lengths, config.max_length)
    if variants is None:
        per_batch = packing.rows_per_batch(len(rows), row_length, config.num_attention_heads)
    else:  # the fewest batches the budget allows, their rows as even as can be
        most = rows_per_batch(config, row_length, variants, effect)
        batches = -(-len(rows) // most)
        per_batch = -(-len(rows) // batches)
    return packing.cut(rows, lengths, row_length, per_batch)


def _inputs(config: EncoderConfig, batch: packing.PackedBatch,
            encodings: Sequence[Encoding]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = {p.index: encodings[p.index].input_ids for p in batch.placed}
    tokens, segments, positions, _ = packing.batch_arrays(batch, ids, config.pad_token_id,
                                                          config.position_offset)
    return tokens, segments, positions


def context_means(programs: Any, params: Any, config: EncoderConfig,
                  encodings: Sequence[Encoding]) -> np.ndarray:
    """float32 [layer, head, head dim]: each head's context averaged over every token of the
    encodings (``programs``: the model's `headprobe.model.compiled.ForwardPrograms`)."""
    c = config
    total = np.zeros((c.num_hidden_layers, c.num_attention_heads, c.head_dim), np.float64)
    count = 0
    for batch in plan(config, [len(e) for e in encodings], None, "hidden"):
        program = programs.contributions(batch.rows, batch.row_length, variants=None,
                                         effect="")
        total += np.asarray(program(params, *_inputs(config, batch, encodings)),
                            dtype=np.float64)
        count += sum(p.length for p in batch.placed)
    if count == 0:
        raise UsageError("mean ablation needs at least one sentence")
    return (total / count).astype(np.float32)


def compile_ahead(programs: Any, config: EncoderConfig, encodings: Sequence[Encoding],
                  variants: Variants, effect: str) -> threading.Thread | None:
    """Start compiling the effects program of this call in a thread (XLA compiles without the
    GIL), so that it overlaps the mean-ablation pass; `iter_effects` joins it."""
    batches = plan(config, [len(e) for e in encodings], variants, effect)
    if not batches:
        return None

    def compile_first() -> None:
        try:
            programs.contributions(batches[0].rows, batches[0].row_length, variants=variants,
                                   effect=effect)
        except Exception:  # compiled again, and the error raised, where the program is used
            pass

    thread = threading.Thread(target=compile_first, daemon=True, name="headprobe-compile")
    thread.start()
    return thread


def iter_effects(programs: Any, params: Any, config: EncoderConfig,
                 encodings: Sequence[Encoding], variants: Variants, *, effect: str,
                 values: np.ndarray, ahead: threading.Thread | None = None
                 ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index into encodings, float32 [variant, token])`` batch by batch: each
    variant's effect at each token of the sentence (``values``: the replacement contexts,
    [layer, head, head dim]; ``ahead``: the thread of `compile_ahead`, joined first)."""
    if ahead is not None:
        ahead.join()
    # One batch of lookahead: the next batch computes (XLA's own threads) while the caller
    # works through this one's effects.
    pending: tuple[packing.PackedBatch, Any] | None = None
    for batch in plan(config, [len(e) for e in encodings], variants, effect):
        program = programs.contributions(batch.rows, batch.row_length, variants=variants,
                                         effect=effect)
        dispatched = (batch, program(params, *_inputs(config, batch, encodings), values))
        if pending is not None:
            yield from _effects_of(*pending)
        pending = dispatched
    if pending is not None:
        yield from _effects_of(*pending)


def _effects_of(batch: packing.PackedBatch, out: Any) -> Iterator[tuple[int, np.ndarray]]:
    values = np.asarray(out)  # [rows, variant, token]; waits for the batch
    for placed in batch.placed:
        span = slice(placed.start, placed.start + placed.length)
        yield placed.index, np.ascontiguousarray(values[placed.row, :, span])

"""Sequence packing: several sentences per row of a fixed length, so that one compiled program
serves a whole call whatever the mix of lengths, and almost no token is padding. Pure: numpy.

A call's sentences go into rows of ``row_length`` tokens, best fit decreasing (`pack`):
`choose_rows` tries the lengths of `ROW_LENGTHS` that hold the call's longest sentence (at most
the model's maximum; a longer sentence: its length rounded up to `LONG_ROW_STEP`) and keeps the
cheapest, weighing the padding each leaves against the
attention costs (scores, softmax) that grow with the row length (`row_cost`); the rows are cut
into batches of the same number of rows (`cut`), so every batch of the call has one shape.
Within a row each sentence is a *segment*: it attends only to its own tokens (block-diagonal
mask: masked keys get probability exactly 0) and its positions restart at 0 (RoBERTa: at
``pad_token_id + 1``), so a packed sentence gets the outputs it gets alone.

`batch_arrays` builds a batch's inputs: token ids, segment ids (1, 2, ... per sentence, 0 for
padding) and position ids, ``[rows, row_length]`` each, and where each sentence lies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Row lengths tried, smallest first (a call uses one).
ROW_LENGTHS = (32, 64, 128, 256, 512)
#: A call whose longest sentence is longer than the longest of `ROW_LENGTHS` (models reading
#: thousands of tokens: ModernBERT) gets rows of that sentence's length rounded up to a multiple
#: of this (few compiled shapes, little padding), never the model's whole maximum.
LONG_ROW_STEP = 256
#: The row length at which a token's attention work (scores, mask, softmax, the band kept)
#: costs about as much as the rest of its layer (measured on MiniLM: rows of 128 ran 1.5x the
#: time of rows of 64 for the same tokens).
ATTENTION_TOKENS = 128
#: Tokens per batch (rows x row length) when only a few heads are output (measured on MiniLM
#: and a bert-base shape: 2,048 and 4,096 run alike, 8,192 slower).
BATCH_TOKENS = 2048
#: Most bytes of attention output per batch (rows x heads x row_length^2 x 4): with every head
#: of a large model asked for, fewer rows per batch keep the peak memory down.
BATCH_OUTPUT_BYTES = 48 << 20


@dataclass(frozen=True)
class Placed:
    """Where one sentence lies in its batch: row, first column and length."""

    index: int  # into the call's sentences
    row: int
    start: int
    length: int


@dataclass(frozen=True)
class PackedBatch:
    """One batch: ``rows`` rows of ``row_length`` tokens and the sentences placed in them."""

    rows: int
    row_length: int
    placed: tuple[Placed, ...]

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(p.index for p in self.placed)


def row_length_for(lengths: Sequence[int], max_length: int) -> int:
    """The row length `choose_rows` picks for these lengths."""
    return choose_rows(lengths, max_length)[0]


def choose_rows(lengths: Sequence[int], max_length: int) -> tuple[int, list[list[int]]]:
    """``(row length, rows)``: of `ROW_LENGTHS` (capped at the model's ``max_length``, which
    no sentence exceeds) that hold the longest sentence, the one with the least `row_cost`."""
    longest = max(lengths, default=1)
    fitted = min(-(-longest // LONG_ROW_STEP) * LONG_ROW_STEP, max_length)
    candidates = sorted({min(c, max_length) for c in ROW_LENGTHS if min(c, max_length) >= longest}
                        | {fitted})
    best: tuple[float, int, list[list[int]]] | None = None
    for row_length in candidates:
        rows = pack(lengths, row_length)
        cost = row_cost(len(rows), row_length)
        if best is None or cost < best[0]:
            best = (cost, row_length, rows)
    assert best is not None
    return best[1], best[2]


def row_cost(rows: int, row_length: int) -> float:
    """The relative cost of computing ``rows`` rows of ``row_length`` tokens: every token,
    padding included, with attention work growing with the row length."""
    return rows * row_length * (1 + row_length / ATTENTION_TOKENS)


def pack(lengths: Sequence[int], row_length: int) -> list[list[int]]:
    """Sentence indices per row, best fit decreasing: longest first, each into the fullest row
    it fits in (a new row when none). Rows come out in the order they were opened."""
    rows: list[list[int]] = []
    free: list[int] = []
    # by_space[s]: rows with exactly s tokens free (best fit: the least space that fits)
    by_space: list[list[int]] = [[] for _ in range(row_length + 1)]
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        length = lengths[index]
        if length > row_length:
            raise ValueError(f"a sentence of {length} tokens does not fit a row of "
                             f"{row_length}")
        row = next((r for space in range(length, row_length + 1) for r in by_space[space][:1]),
                   None)
        if row is None:
            row = len(rows)
            rows.append([])
            free.append(row_length)
        else:
            by_space[free[row]].remove(row)
        rows[row].append(index)
        free[row] -= length
        by_space[free[row]].append(row)
    return rows


def rows_per_batch(total_rows: int, row_length: int, heads_out: int,
                   most: int | None = None, band: int | None = None) -> int:
    """Rows per batch: at most what `BATCH_TOKENS`, `BATCH_OUTPUT_BYTES` (and ``most``) allow,
    and such that the batches hold the rows with (almost) no empty row: of the batch counts
    from the fewest possible to twice that, the first that wastes at most 1% of the rows, else
    the one that wastes least."""
    by_tokens = max(1, BATCH_TOKENS // row_length)
    kept = row_length if band is None else band  # keys per query in the output
    by_output = max(1, BATCH_OUTPUT_BYTES // max(1, heads_out * row_length * kept * 4))
    most = max(1, min(by_tokens, by_output, most or by_tokens))
    fewest = -(-total_rows // most)
    best = (total_rows + most, most)  # (rows computed, rows per batch)
    for batches in range(fewest, 2 * fewest + 1):
        per_batch = -(-total_rows // batches)
        computed = per_batch * batches
        if computed - total_rows <= total_rows // 100:
            return per_batch
        best = min(best, (computed, per_batch))
    return best[1]


def plan(lengths: Sequence[int], max_length: int, heads_out: int) -> list[PackedBatch]:
    """The call's batches: one row length, one number of rows; sentences keep no particular
    order."""
    if not lengths:
        return []
    row_length, rows = choose_rows(lengths, max_length)
    return cut(rows, lengths, row_length, rows_per_batch(len(rows), row_length, heads_out))


def cut(rows: list[list[int]], lengths: Sequence[int], row_length: int,
        per_batch: int) -> list[PackedBatch]:
    """Packed ``rows`` (sentence indices) into batches of ``per_batch`` rows (the last one
    filled up with empty rows)."""
    batches = []
    for first in range(0, len(rows), per_batch):
        placed = []
        for offset, row in enumerate(rows[first:first + per_batch]):
            start = 0
            for index in row:
                placed.append(Placed(index, offset, start, lengths[index]))
                start += lengths[index]
        batches.append(PackedBatch(per_batch, row_length, tuple(placed)))
    return batches


def band_width(lengths: Sequence[int], row_length: int) -> int:
    """How many keys of each query's own sentence a call's outputs keep: the longest
    sentence, rounded up to a multiple of 8, at most the row length. Attentions come back as
    ``[..., query, band]`` (key j of the band is key ``start + j`` of the row, ``start`` the
    first position of the query's sentence), not ``[..., query, row]``: a row of four
    sentences of 30 tokens keeps 32 keys per query instead of 128."""
    longest = max(lengths, default=1)
    return min(-(-longest // 8) * 8, row_length)


def batch_arrays(batch: PackedBatch, ids: Mapping[int, np.ndarray], pad_token_id: int,
                 position_offset: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """int32 ``[rows, row_length]`` token ids (``ids``: by sentence index; padding:
    ``pad_token_id``), segment ids (1, 2, ...
    within a row; 0 for padding) and position ids (0, 1, ... per sentence; with
    ``position_offset``, RoBERTa's: ``pad + 1 + `` the count of non-padding tokens before, as
    transformers computes them from the ids), and the first position of each token's sentence
    (0 for padding; see `band_width`)."""
    shape = (batch.rows, batch.row_length)
    tokens = np.full(shape, pad_token_id, dtype=np.int32)
    segments = np.zeros(shape, dtype=np.int32)
    positions = np.zeros(shape, dtype=np.int32)
    starts = np.zeros(shape, dtype=np.int32)
    segment_of_row = [0] * batch.rows
    for placed in batch.placed:
        sentence = np.asarray(ids[placed.index], dtype=np.int32)
        span = slice(placed.start, placed.start + placed.length)
        tokens[placed.row, span] = sentence
        segment_of_row[placed.row] += 1
        segments[placed.row, span] = segment_of_row[placed.row]
        starts[placed.row, span] = placed.start
        if position_offset:
            real = (sentence != pad_token_id).astype(np.int32)
            positions[placed.row, span] = np.cumsum(real) * real + pad_token_id
        else:
            positions[placed.row, span] = np.arange(placed.length, dtype=np.int32)
    if position_offset:
        positions[segments == 0] = pad_token_id
    return tokens, segments, positions, starts


def padded_fraction(batches: Sequence[PackedBatch]) -> float:
    """Tokens computed that are padding, as a share of the real tokens."""
    real = sum(p.length for b in batches for p in b.placed)
    computed = sum(b.rows * b.row_length for b in batches)
    return computed / real - 1 if real else 0.0

"""Sequence packing: several sentences per row of a fixed length, so that one compiled program
serves a whole call whatever the mix of lengths, and almost no token is padding. Pure: numpy.

A call's sentences go into rows of ``row_length`` tokens (`row_length_for`: the smallest of
`ROW_LENGTHS` that holds the call's longest sentence, at most the model's maximum), best fit
decreasing (`pack`); the rows are cut into batches of the same number of rows (`plan`), so
every batch of the call has one shape. Within a row each sentence is a *segment*: it attends
only to its own tokens (block-diagonal mask: masked keys get probability exactly 0) and its
positions restart at 0 (RoBERTa: at ``pad_token_id + 1``), so a packed sentence gets the
outputs it gets alone.

`batch_arrays` builds a batch's inputs: token ids, segment ids (1, 2, ... per sentence, 0 for
padding) and position ids, ``[rows, row_length]`` each, and where each sentence lies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Row lengths tried, smallest first (a call uses one).
ROW_LENGTHS = (128, 256, 512)
#: Tokens per batch (rows x row length) when only a few heads are output.
BATCH_TOKENS = 4096
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
    """The smallest row length of `ROW_LENGTHS` that holds the longest sentence, capped at
    the model's ``max_length`` (which the longest sentence never exceeds)."""
    longest = max(lengths, default=1)
    for candidate in ROW_LENGTHS:
        if candidate >= longest:
            return min(candidate, max_length)
    return max_length


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
                   most: int | None = None) -> int:
    """Rows per batch: at most what `BATCH_TOKENS`, `BATCH_OUTPUT_BYTES` (and ``most``) allow,
    and such that the batches hold the rows with (almost) no empty row: of the batch counts
    from the fewest possible to twice that, the first that wastes at most 1% of the rows, else
    the one that wastes least."""
    by_tokens = max(1, BATCH_TOKENS // row_length)
    by_output = max(1, BATCH_OUTPUT_BYTES // max(1, heads_out * row_length * row_length * 4))
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
    row_length = row_length_for(lengths, max_length)
    rows = pack(lengths, row_length)
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


def batch_arrays(batch: PackedBatch, ids: Mapping[int, np.ndarray], pad_token_id: int,
                 position_offset: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int32 ``[rows, row_length]`` token ids (``ids``: by sentence index; padding:
    ``pad_token_id``), segment ids (1, 2, ...
    within a row; 0 for padding) and position ids (0, 1, ... per sentence; with
    ``position_offset``, RoBERTa's: ``pad + 1 + `` the count of non-padding tokens before, as
    transformers computes them from the ids)."""
    shape = (batch.rows, batch.row_length)
    tokens = np.full(shape, pad_token_id, dtype=np.int32)
    segments = np.zeros(shape, dtype=np.int32)
    positions = np.zeros(shape, dtype=np.int32)
    segment_of_row = [0] * batch.rows
    for placed in batch.placed:
        sentence = np.asarray(ids[placed.index], dtype=np.int32)
        span = slice(placed.start, placed.start + placed.length)
        tokens[placed.row, span] = sentence
        segment_of_row[placed.row] += 1
        segments[placed.row, span] = segment_of_row[placed.row]
        if position_offset:
            real = (sentence != pad_token_id).astype(np.int32)
            positions[placed.row, span] = np.cumsum(real) * real + pad_token_id
        else:
            positions[placed.row, span] = np.arange(placed.length, dtype=np.int32)
    if position_offset:
        positions[segments == 0] = pad_token_id
    return tokens, segments, positions


def padded_fraction(batches: Sequence[PackedBatch]) -> float:
    """Tokens computed that are padding, as a share of the real tokens."""
    real = sum(p.length for b in batches for p in b.placed)
    computed = sum(b.rows * b.row_length for b in batches)
    return computed / real - 1 if real else 0.0

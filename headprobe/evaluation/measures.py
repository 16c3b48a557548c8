"""The measures, per source row (SPEC §4, §13), and the fixed-offset baseline. Pure numpy.

Rows are attention over every real position (``[CLS]`` and ``[SEP]`` included), one per counted
source; ``targets`` is the matching boolean ``[source, position]`` target matrix.

- ``argmax``: hit iff the most-attended position is a target; ties go to the lowest position.
- ``topk:K``: hit iff a target is among the K most-attended positions; ties rank lower positions
  first (a stable sort on ``-row``).
- ``mass``: the total attention on the targets.
- ``entropy``: the row's entropy ``-sum(p log p)`` (natural log, ``0 log 0 = 0``) divided by the
  log of its number of positions: 0 when all attention is on one position, 1 when it is
  uniform. ``targets`` are not used. A row of one position scores 0.
"""

from __future__ import annotations

import numpy as np

from headprobe.claims.spec import Measure

#: Offsets the baseline tries, in tie-break order: smaller |k| first, then the negative k.
BASELINE_OFFSETS: tuple[int, ...] = (-1, 1, -2, 2, -3, 3)


def ranked(rows: np.ndarray, k: int) -> np.ndarray:
    """int ``[..., source, min(k, position)]``: the k most-attended positions of each row, ties
    lower positions first."""
    return np.argsort(-rows, axis=-1, kind="stable")[..., :k]


def source_hits(rows: np.ndarray, targets: np.ndarray, measure: Measure) -> np.ndarray:
    """float64 ``[..., source]``: 1.0/0.0 per source for shares, the attention on targets for mass.

    rows: float ``[..., source, position]`` (e.g. ``[head, source, position]``);
    targets: bool ``[source, position]``, shared by the leading axes.
    """
    if rows.shape[-2:] != targets.shape:
        raise ValueError(f"rows {rows.shape} must end in the targets' shape {targets.shape}")
    if measure.kind == "mass":
        return np.where(targets, rows, 0.0).sum(axis=-1, dtype=np.float64)
    if measure.kind == "entropy":
        return row_entropy(rows)
    if measure.kind == "topk":
        return (in_top_k(rows, int(measure.k or 1)) & targets).any(axis=-1).astype(np.float64)
    chosen = np.argmax(rows, axis=-1)  # [..., source]; ties: the lowest position
    return targets[np.arange(targets.shape[0]), chosen].astype(np.float64)


def row_entropy(rows: np.ndarray) -> np.ndarray:
    """float64 ``[...]``: each row's entropy over the log of its length (``rows[..., position]``;
    0: one position has everything, 1: uniform; rows of length 1 are 0)."""
    rows = np.asarray(rows, dtype=np.float64)
    size = rows.shape[-1]
    if size < 2:
        return np.zeros(rows.shape[:-1])
    positive = rows > 0
    terms = np.where(positive, rows * np.log(np.where(positive, rows, 1.0)), 0.0)
    return -terms.sum(axis=-1) / np.log(size)


def in_top_k(rows: np.ndarray, k: int) -> np.ndarray:
    """bool ``[..., source, position]``: the k most-attended positions of each row, ties lower
    positions first — the same set as ``ranked(rows, k)``, without a full sort.

    With ``v`` the k-th largest value: every position above ``v`` is in; of the positions equal
    to ``v``, the lowest ``k - (count above v)`` are in.
    """
    size = rows.shape[-1]
    if k >= size:
        return np.ones(rows.shape, dtype=bool)
    kth = np.partition(rows, size - k, axis=-1)[..., size - k, None]  # [..., source, 1]
    above = rows > kth
    tied = rows == kth
    slots = k - above.sum(axis=-1, keepdims=True)
    earlier_ties = np.cumsum(tied, axis=-1) - tied
    return above | (tied & (earlier_ties < slots))


def chosen_positions(rows: np.ndarray, measure: Measure) -> np.ndarray:
    """int ``[..., source, k]``: the positions a source "looks at": its top K for ``topk:K``,
    else its argmax (ties to the lowest position) as a single column."""
    k = int(measure.k or 1) if measure.kind == "topk" else 1
    if k == 1:
        return np.argmax(rows, axis=-1)[..., None]
    return ranked(rows, k)


def baseline_hits(sources: np.ndarray, targets: np.ndarray) -> dict[int, float]:
    """Per offset k in `BASELINE_OFFSETS`, how many sources have ``i + k`` among their targets.

    A predictor that puts all its attention on ``i + k`` scores the same for argmax, topk and
    mass: 1 when ``i + k`` is a target, else 0. sources: int ``[source]`` (positions);
    targets: bool ``[source, position]``.
    """
    size = targets.shape[1]
    hits = {}
    for k in BASELINE_OFFSETS:
        shifted = sources + k
        inside = (shifted >= 0) & (shifted < size)
        rows = np.flatnonzero(inside)
        hits[k] = float(targets[rows, shifted[inside]].sum())
    return hits


def best_baseline(hits: dict[int, float], n: int) -> tuple[int, float] | None:
    """``(k, value)`` of the best offset: highest hits / n; ties to the smaller |k|, then the
    negative k. ``None`` when nothing was counted."""
    if n <= 0:
        return None
    best = max(BASELINE_OFFSETS, key=lambda k: (hits.get(k, 0.0), -BASELINE_OFFSETS.index(k)))
    return best, hits.get(best, 0.0) / n

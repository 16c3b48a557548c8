"""The measures, per source row (SPEC §4, §13), and the fixed-offset baseline. Pure numpy.

Rows are attention over every real position (``[CLS]`` and ``[SEP]`` included), one per counted
source; ``targets`` is the matching boolean ``[source, position]`` target matrix.

- ``argmax``: 1 when the most-attended position is a target, 0 when it is not; a row whose
  maximum is tied among m positions gives 1/m to each of them, so it scores (tied targets) / m.
- ``topk:K``: 1 when a target is among the K most-attended positions; when the K-th place is tied,
  the chance that a uniformly random choice among the tied positions puts a target in the top K
  (``topk:1`` is ``argmax``).
- ``mass``: the total attention on the targets.
- ``entropy``: the row's entropy ``-sum(p log p)`` (natural log, ``0 log 0 = 0``) divided by the
  log of its number of positions: 0 when all attention is on one position, 1 when it is
  uniform. ``targets`` are not used. A row of one position scores 0.

Ties: two weights of a row are tied when they differ by at most `TIE_RTOL` of the larger one
(float32 softmax rounds equal logits to weights a few units in the last place apart).
"""

from __future__ import annotations

import numpy as np

from headprobe.claims.spec import Measure

#: Offsets the baseline tries, in tie-break order: smaller |k| first, then the negative k.
BASELINE_OFFSETS: tuple[int, ...] = (-1, 1, -2, 2, -3, 3)
#: Relative tolerance of a tie: about 8 float32 units in the last place.
TIE_RTOL = 1e-6


def source_hits(rows: np.ndarray, targets: np.ndarray, measure: Measure) -> np.ndarray:
    """float64 ``[..., source]``: per source its share of a hit (argmax, topk: 0 to 1, see the
    module docstring for ties), the attention on its targets (mass) or its row's entropy.

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
        return topk_hits(rows, targets, int(measure.k or 1))
    return argmax_hits(rows, targets)


def tied(rows: np.ndarray, value: np.ndarray) -> np.ndarray:
    """bool, ``rows``' shape: the weights within `TIE_RTOL` (relative) of ``value`` (which
    broadcasts against ``rows``, e.g. ``[..., source, 1]``)."""
    return np.abs(rows - value) <= TIE_RTOL * np.maximum(rows, value)


def top_ties(rows: np.ndarray) -> np.ndarray:
    """bool ``[..., source, position]``: each row's most-attended positions (its maximum and
    every position tied with it: no weight exceeds the maximum, so `tied` is one comparison)."""
    return rows >= rows.max(axis=-1, keepdims=True) * (1.0 - TIE_RTOL)


def argmax_hits(rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """float64 ``[..., source]``: the share of each row's tied maxima that are targets (1 or 0
    without a tie: the target matrix at the argmax, the share computed only where rows tie)."""
    chosen = np.argmax(rows, axis=-1)  # [..., source]
    top = rows >= np.take_along_axis(rows, chosen[..., None], axis=-1) * (1.0 - TIE_RTOL)
    ties = _count(top)
    hits = targets[np.arange(targets.shape[0]), chosen].astype(np.float64)
    if (ties > 1).any():
        hits = np.where(ties > 1, _count(top & targets) / ties, hits)
    return hits


def _count(cells: np.ndarray) -> np.ndarray:
    """int32 ``[...]``: the True cells of each row (``cells[..., position]``; summed as bytes,
    faster than a sum of booleans)."""
    return np.ascontiguousarray(cells).view(np.uint8).sum(axis=-1, dtype=np.int32)


def topk_hits(rows: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """float64 ``[..., source]``: 1 when a target is among the K most-attended positions; with
    m positions tied at the K-th place, t of them targets and s places left for them, the chance
    that s of the m drawn at random include a target: ``1 - C(m - t, s) / C(m, s)``."""
    size = rows.shape[-1]
    if k >= size:
        return np.broadcast_to(targets.any(axis=-1), rows.shape[:-1]).astype(np.float64)
    kth = np.partition(rows, size - k, axis=-1)[..., size - k, None]  # [..., source, 1]
    boundary = tied(rows, kth)
    above = (rows > kth) & ~boundary
    slots = k - above.sum(axis=-1)  # [..., source], 1..k
    m = boundary.sum(axis=-1)
    t = (boundary & targets).sum(axis=-1)
    draw = np.arange(k)  # C(m - t, s) / C(m, s) = prod over draws j < s of (m - t - j) / (m - j)
    use = draw < slots[..., None]  # [..., source, k]
    misses = np.where(use, np.maximum((m - t)[..., None] - draw, 0), 1.0)
    picks = np.where(use, m[..., None] - draw, 1.0)
    miss_all = np.prod(misses / picks, axis=-1)
    return np.where((above & targets).any(axis=-1), 1.0, 1.0 - miss_all)


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


def chosen_cells(rows: np.ndarray, measure: Measure) -> np.ndarray:
    """bool ``[..., source, position]``: the positions a source "looks at": its top K and every
    position tied at the K-th place for ``topk:K``, else its maximum and the positions tied with
    it."""
    k = int(measure.k or 1) if measure.kind == "topk" else 1
    if k == 1:
        return top_ties(rows)
    size = rows.shape[-1]
    if k >= size:
        return np.ones(rows.shape, dtype=bool)
    kth = np.partition(rows, size - k, axis=-1)[..., size - k, None]
    return (rows > kth) | tied(rows, kth)


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

"""What a failure diagram needs for one sentence: the matrix, labels, expected and actual cells.

A long sentence is drawn through a window (`windowed`): at most `MAX_FIGURE_POSITIONS` rows
around the source that misses worst, and the same columns plus every column those rows expect
or pick outside them, so a 500-token sentence gives a readable figure of bounded size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headprobe.claims.spec import ClaimSpec, Sentence
from headprobe.evaluation.accumulate import head_selection, score_sentence
from headprobe.evaluation.effects import effect_numbers
from headprobe.evaluation.measures import chosen_cells
from headprobe.evaluation.positions import level_view
from headprobe.heads import Head
from headprobe.runs import Run

MAX_FIGURE_POSITIONS = 48
"""Most rows (and window columns) a failure diagram shows."""
MAX_EXTRA_COLUMNS = 16
"""Most columns outside the window (targets and argmax cells of its rows) a diagram adds."""


@dataclass(frozen=True, eq=False)
class AttentionView:
    """One head's attention on one sentence at the claim's level.

    Attributes:
      matrix: float32 ``[query, key]``.
      labels: per position: the wordpiece, or the word at ``level: word``.
      expected: ``(query, key)`` cells: every counted source with each of its targets.
      actual: ``(query, key)`` cells: every counted source with its argmax (its top K for topk),
        and every cell tied with it (a uniform row: the whole row).
      value: the sentence's score (``None`` when no source counted).
      rows, columns: the sentence positions the matrix's rows and columns show (all of them,
        unless `windowed` cut the view); ``labels`` go with the rows, `column_labels` with the
        columns.
      note: what a window leaves out, for the figure's title (empty when nothing is).
    """

    matrix: np.ndarray
    labels: tuple[str, ...]
    expected: tuple[tuple[int, int], ...]
    actual: tuple[tuple[int, int], ...]
    value: float | None
    rows: tuple[int, ...] = ()
    columns: tuple[int, ...] = ()
    column_labels: tuple[str, ...] = ()
    note: str = ""


def attention_view(spec: ClaimSpec, head: Head, sentence: Sentence, run: Run,
                   half: int | None = None) -> AttentionView:
    """``head``'s attention on one sentence with the claim's targets (``half``: the head's reach
    when it is in a local layer; its expected cells are those it can reach, as it is scored)."""
    view = level_view(run, spec.level)
    selection = head_selection(spec, sentence, run, half)
    matrix = view.matrix(head)
    expected = tuple((int(q), int(k)) for q, row in zip(selection.sources, selection.targets)
                     for k in np.flatnonzero(row))
    chosen = chosen_cells(matrix[selection.sources], spec.measure)  # [source, position]
    actual = tuple((int(selection.sources[i]), int(k)) for i, k in zip(*np.nonzero(chosen)))
    positions = tuple(range(view.size))
    return AttentionView(matrix=matrix.astype(np.float32), labels=view.labels,
                         expected=expected, actual=actual,
                         value=score_sentence(spec, head, sentence, run, half).value,
                         rows=positions, columns=positions, column_labels=view.labels)


def effect_view(spec: ClaimSpec, head: Head, sentence: Sentence, run: Run,
                effects: np.ndarray) -> AttentionView:
    """An effect claim's diagram (SPEC §14.2): ``head``'s attention, each row labelled with
    the effect of removing the head at that position, first (``effects`` float ``[token]``; at word
    level the mean of the word's pieces) and its argmax cells marked; ``value`` is the
    sentence's effect."""
    view = level_view(run, spec.level)
    matrix = view.matrix(head)
    values = np.asarray(effects, dtype=np.float64)
    per_position = np.array([values[list(pieces)].mean() for pieces in view.groups])
    numbers = effect_numbers(spec, sentence, run, values[None])
    chosen = chosen_cells(matrix, spec.measure)
    actual = tuple((int(q), int(k)) for q, k in zip(*np.nonzero(chosen)))
    labels = tuple(f"{value:.3f} {label}" for label, value in zip(view.labels, per_position))
    positions = tuple(range(view.size))
    return AttentionView(matrix=matrix.astype(np.float32), labels=labels, expected=(),
                         actual=actual,
                         value=float(numbers.hits[0]) / numbers.n if numbers.n else None,
                         rows=positions, columns=positions, column_labels=view.labels)


def windowed(view: AttentionView, size: int = MAX_FIGURE_POSITIONS,
             extra: int = MAX_EXTRA_COLUMNS) -> AttentionView:
    """``view`` cut to at most ``size`` consecutive rows and their columns (see the module
    docstring); unchanged when it is that small already.

    The window is centred on the first source whose argmax (or top K) misses every target, or
    on the first source when none misses. Cells are renumbered into the window.
    """
    total = view.matrix.shape[0]
    if total <= size:
        return view
    hits = set(view.expected) & set(view.actual)
    sources = sorted({q for q, _ in view.expected})
    missing = [q for q in sources if not any((q, k) in hits for k in range(total))]
    focus = (missing or sources or [0])[0]
    start = min(max(focus - size // 2, 0), total - size)
    rows = list(range(start, start + size))
    inside = set(rows)
    outside = sorted({k for q, k in (*view.expected, *view.actual)
                      if q in inside and k not in inside})
    columns = sorted(inside | set(outside[:extra]))
    row_at = {p: i for i, p in enumerate(rows)}
    column_at = {p: i for i, p in enumerate(columns)}

    def cells(pairs: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        return tuple((row_at[q], column_at[k]) for q, k in pairs
                     if q in row_at and k in column_at)

    left_out = len(outside) - len(outside[:extra])
    note = (f"rows {start + 1}-{start + size} of {total} positions; columns: the same"
            + (f" and {len(outside[:extra])} more (#position)" if outside else "")
            + (f", {left_out} target/argmax columns not shown" if left_out else ""))
    labels = tuple(view.labels)
    return AttentionView(
        matrix=view.matrix[np.ix_(rows, columns)], labels=tuple(labels[p] for p in rows),
        expected=cells(view.expected), actual=cells(view.actual), value=view.value,
        rows=tuple(rows), columns=tuple(columns),
        column_labels=tuple(labels[p] if p in inside else f"#{p + 1} {labels[p]}"
                            for p in columns),
        note=note)

"""What a failure diagram needs for one sentence: the matrix, labels, expected and actual cells."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headprobe.claims.spec import ClaimSpec, Sentence
from headprobe.evaluation.accumulate import score_sentence
from headprobe.evaluation.measures import chosen_positions
from headprobe.evaluation.positions import level_view, select
from headprobe.heads import Head
from headprobe.runs import Run


@dataclass(frozen=True, eq=False)
class AttentionView:
    """One head's attention on one sentence at the claim's level.

    Attributes:
      matrix: float32 ``[query, key]``.
      labels: per position: the wordpiece, or the word at ``level: word``.
      expected: ``(query, key)`` cells: every counted source with each of its targets.
      actual: ``(query, key)`` cells: every counted source with its argmax (its top K for topk).
      value: the sentence's score (``None`` when no source counted).
    """

    matrix: np.ndarray
    labels: tuple[str, ...]
    expected: tuple[tuple[int, int], ...]
    actual: tuple[tuple[int, int], ...]
    value: float | None


def attention_view(spec: ClaimSpec, head: Head, sentence: Sentence, run: Run) -> AttentionView:
    view = level_view(run, spec.level)
    selection = select(view, spec.claim.source, spec.claim.target, tuple(sentence.spans))
    matrix = view.matrix(head)
    expected = tuple((int(q), int(k)) for q, row in zip(selection.sources, selection.targets)
                     for k in np.flatnonzero(row))
    chosen = chosen_positions(matrix[selection.sources], spec.measure)  # [source, k]
    actual = tuple((int(q), int(k)) for q, ks in zip(selection.sources, chosen) for k in ks)
    return AttentionView(matrix=matrix.astype(np.float32), labels=view.labels,
                         expected=expected, actual=actual,
                         value=score_sentence(spec, head, sentence, run).value)

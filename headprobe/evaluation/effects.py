"""The numbers of ``measure: effect`` claims (SPEC §14.2), per sentence. Pure numpy.

The model gives, per variant (a head removed, or the claim's heads together), the effect at each
token (`headprobe.model.loaded.Model.iter_effects`). A claim's sources pick the tokens that
count, at its level: at ``level: word`` a word's effect is the mean of its pieces'. For
``effect: embedding`` the value is per sentence: each sentence with a counted source counts
once, with its ``1 - cos``. The result is the `SentenceNumbers` every measure streams into a
`ClaimAccumulator`: counted sources ``n`` and the sum of their effects per head.
"""

from __future__ import annotations

import numpy as np

from headprobe.claims.spec import ClaimSpec, Sentence
from headprobe.evaluation.accumulate import SentenceNumbers
from headprobe.evaluation.positions import level_view, select
from headprobe.runs import Encoding, Run


def effect_run(encoding: Encoding) -> Run:
    """A `Run` of ``encoding`` that only its positions are read from (its attentions are
    zeros: an effect claim reads no attention)."""
    size = len(encoding)
    return Run(**encoding.encoding_fields(),
               attentions=np.zeros((1, 1, size, size), dtype=np.float32))


def effect_numbers(spec: ClaimSpec, sentence: Sentence, run: Run,
                   effects: np.ndarray) -> SentenceNumbers:
    """One sentence's numbers from ``effects`` float ``[variant, token]`` (one variant per
    column of the accumulator's heads)."""
    view = level_view(run, spec.level)
    selection = select(view, spec.claim.source, None, tuple(sentence.spans))
    values = np.asarray(effects, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(run.tokens):
        raise ValueError(f"effects must be [variant, token] with {len(run.tokens)} tokens, got "
                         f"shape {values.shape}")
    if spec.measure.effect == "embedding":  # one value per sentence, the same at every token
        counted = 1 if selection.n else 0
        return SentenceNumbers(counted, 0, values[:, 0] * counted)
    if view.level == "word":
        values = np.stack([values[:, list(pieces)].mean(axis=1) for pieces in view.groups],
                          axis=1)
    return SentenceNumbers(selection.n, 0, values[:, selection.sources].sum(axis=1))

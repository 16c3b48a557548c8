"""Checks of a claim on its sentences that need their tokens but no attention (collection time).

`fixed_offset`: a ``baseline: offset`` claim whose every counted source has the token at one
fixed offset ``i + k`` (k in the baseline's range) among its targets can never beat the
baseline: always attending to ``i + k`` already scores 1.0. That is so of ``-> next`` and
``-> offset:+2``, and of spans that sit at one offset in every sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from headprobe.claims.spec import ClaimSpec, Sentence
from headprobe.evaluation.measures import BASELINE_OFFSETS, baseline_hits
from headprobe.evaluation.positions import level_view, select
from headprobe.runs import Encoding, Run


def fixed_offset(spec: ClaimSpec, sentences: Sequence[Sentence],
                 encodings: Sequence[Encoding]) -> int | None:
    """The offset k whose baseline scores 1.0 on these sentences (the smallest |k|, then the
    negative), or None when there is none or nothing is counted."""
    counted = 0
    hits = dict.fromkeys(BASELINE_OFFSETS, 0.0)
    for sentence, encoding in zip(sentences, encodings):
        n = len(encoding)
        run = Run(**encoding.encoding_fields(), attentions=np.zeros((1, 1, n, n), dtype=np.float32))
        selection = select(level_view(run, spec.level), spec.claim.source, spec.claim.target,
                           tuple(sentence.spans))
        counted += selection.n
        for k, value in baseline_hits(selection.sources, selection.targets).items():
            hits[k] += value
    if counted == 0:
        return None
    full = [k for k in BASELINE_OFFSETS if hits[k] >= counted]
    return min(full, key=lambda k: (abs(k), k)) if full else None

"""Ranking every head for one claim (``discover --for``), and the thresholds of written claims.
Pure: results in, rankings and numbers out.

A head is **proposed** when the lower end of its 95% interval is above the best fixed-offset
baseline's value (SPEC §2: the same measure obtained by always attending to i+k): it beats the
baseline with confidence, not only by its estimate. At most ``top`` heads are proposed, best
first. Without a baseline (``measure: entropy``) the best heads are proposed as they rank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from headprobe.evaluation.results import Baseline, ClaimResult

STEP = 0.05
"""Thresholds of written claims are multiples of this."""


def threshold(low: float, value: float, step: float = STEP) -> float:
    """The expectation of a written claim: the lower 95% bound rounded down to a multiple of
    ``step`` (and never above the value itself, whatever float rounding does), as a number
    that prints the way it is written (0.85, not 0.8500000000000001)."""
    bound = min(low, value)
    if not math.isfinite(bound) or bound <= 0:
        return 0.0
    steps = math.floor(round(bound / step, 9))
    result = round(steps * step, 10)
    while result > bound and steps > 0:  # 0.85 / 0.05 = 16.999999999999996, and the like
        steps -= 1
        result = round(steps * step, 10)
    return result


@dataclass(frozen=True)
class Ranked:
    """One head's standing for the claim: its rank (from 1), result and whether it is proposed."""

    rank: int
    result: ClaimResult
    beats_baseline: bool
    proposed: bool


def rank_heads(results: Sequence[ClaimResult], top: int) -> list[Ranked]:
    """Every head ranked by value (highest first; no value last; ties in head order), the first
    ``top`` heads that beat the baseline with confidence marked as proposed."""
    order = sorted(range(len(results)),
                   key=lambda i: (results[i].value is None, -(results[i].value or 0.0), i))
    ranked: list[Ranked] = []
    proposed = 0
    for rank, i in enumerate(order, start=1):
        result = results[i]
        beats = beats_with_confidence(result)
        take = beats and proposed < top
        proposed += take
        ranked.append(Ranked(rank, result, beats, take))
    return ranked


def beats_with_confidence(result: ClaimResult) -> bool:
    """The head's lower 95% bound is above the baseline (no baseline: it has a value)."""
    if result.value is None or result.ci is None:
        return False
    baseline: Baseline | None = result.baseline
    if baseline is None:
        return True
    return result.ci[0] > baseline.value

"""Confidence intervals (SPEC §4). Pure, deterministic.

- Shares (argmax, topk): the Wilson score interval.
- Mass: a percentile bootstrap over sentences — resample whole sentences with replacement; the
  statistic is the resample's total mass over its total source count. Sentences, not sources,
  are resampled because sources of one sentence share context and are not independent.

A bootstrap over too few sentences has no spread to measure: with m sentences the resample that
draws one sentence m times has probability m^-m, and while that is at least a tail of the
interval ((1 - confidence) / 2) the bound is that sentence's own value, not an estimate (one
sentence: the value itself). `bootstrap_sentences_needed` says how many sentences are enough;
callers report no interval below it (see docs/measures.md).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

DEFAULT_CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
_CHUNK = 100


def _check_level(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")


def bootstrap_sentences_needed(confidence: float = DEFAULT_CONFIDENCE) -> int:
    """The fewest sentences whose percentile bootstrap bounds are estimates: the smallest m with
    m^-m < (1 - confidence) / 2 (4 at 95% and 99%, 5 at 99.9%)."""
    _check_level(confidence)
    tail = (1.0 - confidence) / 2
    m = 1
    while float(m) ** -m >= tail:
        m += 1
    return m


def wilson(hits: float, n: int,
           confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval for ``hits`` successes out of ``n``; ``None`` when ``n == 0``."""
    _check_level(confidence)
    if n <= 0:
        return None
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = hits / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if hits <= 0 else max(0.0, centre - half)  # exact at the ends, no 1e-17 residue
    high = 1.0 if hits >= n else min(1.0, centre + half)
    return low, high


def bootstrap_ratio(hits: np.ndarray, counts: np.ndarray,
                    confidence: float = DEFAULT_CONFIDENCE, *,
                    resamples: int = BOOTSTRAP_RESAMPLES,
                    seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap of ``sum(hits) / sum(counts)`` over sentences.

    hits: float ``[sentence]`` (mass summed over a sentence's sources); counts: int
    ``[sentence]`` (its counted sources). Sentences with no counted source are ignored;
    ``None`` when none is left. Same inputs, same interval (numpy Generator seeded with
    ``seed``).
    """
    hits = np.asarray(hits, dtype=np.float64)
    return bootstrap_ratios(hits[:, None], counts, confidence, resamples=resamples,
                            seed=seed)[0]


def bootstrap_ratios(hits: np.ndarray, counts: np.ndarray,
                     confidence: float = DEFAULT_CONFIDENCE, *,
                     resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> list[tuple[float, float] | None]:
    """`bootstrap_ratio` for several columns at once (e.g. heads) with the same resamples.

    hits: float ``[sentence, column]``; counts: ``[sentence]``. Each resample is a vector of
    multiplicities over sentences, so every column costs one matrix product.
    """
    _check_level(confidence)
    hits = np.asarray(hits, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    keep = counts > 0
    hits, counts = hits[keep], counts[keep]
    sentences, columns = hits.shape
    if sentences == 0:
        return [None] * columns
    rng = np.random.default_rng(seed)
    statistics = []
    both = np.column_stack([hits, counts])  # [sentence, column + 1]: one product per chunk
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        picks = rng.integers(0, sentences, size=(size, sentences))  # [resample, draw]
        flat = (np.arange(size)[:, None] * sentences + picks).ravel()
        weights = np.bincount(flat, minlength=size * sentences).reshape(size, sentences)
        sums = weights.astype(np.float64) @ both  # [resample, column + 1], BLAS
        statistics.append(sums[:, :-1] / sums[:, -1:])  # [resample, column]
    values = np.concatenate(statistics)
    alpha = 1.0 - confidence
    bounds = np.quantile(values, [alpha / 2, 1 - alpha / 2], axis=0)  # [2, column]
    return [(float(low), float(high)) for low, high in bounds.T]

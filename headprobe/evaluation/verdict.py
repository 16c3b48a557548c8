"""From per-sentence numbers to a verdict: pooled value, interval, pass/fail, quantifiers.

Pure functions over small arrays; no runs, no model. Decisions (see docs/measures.md):

- ``average: pool`` (default): the value is the total over all counted sources of all sentences
  divided by their number; ``average: sentence``: the mean of the sentences' own values (each
  sentence with a counted source weighs the same), with a bootstrap interval over sentences
  whatever the measure, and a baseline averaged the same way.
- ``per: pool`` passes iff the pooled value meets the expectation, and with ``confidence`` the
  whole interval does too.
- A sentence bootstrap over fewer sentences than `bootstrap_sentences_needed` gives no interval
  (``ci`` None, ``ci_note`` says why): ``per: pool`` then passes on the value alone, and fails
  with ``confidence`` (which asks for an interval that cannot be had).
- ``per: sentence`` passes iff every sentence with at least one counted source meets the
  expectation on its own value; the pooled value and interval are reported but not checked.
  A failure says how many sentences miss and the worst value (``failure``).
- ``baseline: offset`` additionally needs pooled value > baseline value + margin (strictly).
- No counted source at all: no value, no interval, fail.
- ``any`` / ``none`` pick one head to report: among passing heads the one with the best value in
  the expectation's direction; when none passes, the one closest to passing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from headprobe.claims.spec import ClaimSpec, Expectation
from headprobe.evaluation.intervals import (
    DEFAULT_CONFIDENCE,
    bootstrap_ratios,
    bootstrap_sentences_needed,
    wilson,
)
from headprobe.evaluation.measures import best_baseline
from headprobe.evaluation.results import Baseline

#: Fewer counted sources than this earns a health warning.
FEW_SOURCES = 20
#: How many of the worst sentences a result names for failure diagrams.
WORST = 3


@dataclass(frozen=True)
class HeadOutcome:
    """The verdict of one claim on one head."""

    value: float | None
    ci: tuple[float, float] | None
    n: int
    left_out: int
    passed: bool
    sentences: int | None
    counterexamples: tuple[str, ...] | None
    baseline: Baseline | None
    warnings: tuple[str, ...]
    worst: tuple[int, ...]
    baseline_beaten: bool | None = None  # None without a baseline
    meets_expectation: bool = False  # the verdict before the baseline
    ci_note: str | None = None  # why there is no interval although there is a value
    failure: str | None = None  # why it fails, when the value and interval do not say
    sentences_failed: int | None = None  # per: sentence: how many sentences miss


def closeness(expect: Expectation, value: float | None) -> float:
    """Higher is better in the expectation's direction: the value for ``>=``/``>``, minus it for
    ``<=``/``<``, minus the distance to the middle for ``between``. ``None`` ranks last."""
    if value is None:
        return -math.inf
    if expect.op in (">=", ">", "unchanged"):  # unchanged: the lowest values are drawn
        return value
    if expect.op in ("<=", "<"):
        return -value
    high = expect.high if expect.high is not None else 1.0
    return -abs(value - (expect.low + high) / 2)


BaselineHits = Mapping[int, "float | np.ndarray"]
"""Per offset: the baseline's hits summed over sentences, or per sentence (``[sentence]``; what
``average: sentence`` needs)."""


def judge(spec: ClaimSpec, counts: np.ndarray, left_out: np.ndarray, hits: np.ndarray,
          texts: Sequence[str], indices: Sequence[int],
          baseline_hits: BaselineHits) -> HeadOutcome:
    """The verdict for one head; see `judge_heads` (``hits`` is ``[sentence]`` here)."""
    column = np.asarray(hits, dtype=np.float64)[:, None]
    return judge_heads(spec, counts, left_out, column, texts, indices, baseline_hits)[0]


def judge_heads(spec: ClaimSpec, counts: np.ndarray, left_out: np.ndarray, hits: np.ndarray,
                texts: Sequence[str], indices: Sequence[int],
                baseline_hits: BaselineHits) -> list[HeadOutcome]:
    """One verdict per head. counts, left_out: ``[sentence]``; hits: ``[sentence, head]``;
    texts and indices: per sentence; ``baseline_hits``: per offset, hits summed over sentences
    or per sentence (the same for every head: sources and targets do not depend on the head;
    ``average: sentence`` needs them per sentence)."""
    counts = np.asarray(counts, dtype=np.int64)
    hits = np.asarray(hits, dtype=np.float64).reshape(counts.shape[0], -1)
    n, dropped = int(counts.sum()), int(np.asarray(left_out).sum())
    baseline = _baseline(spec, baseline_hits, counts) if spec.baseline == "offset" else None
    warnings = health_warnings(spec, n, dropped, len(texts))
    values = _values(spec, hits, counts)
    intervals, note = _intervals(spec, hits, counts, n)
    return [_outcome(spec, counts, hits[:, h], values[h], ci, texts, indices, baseline,
                     warnings, dropped, note)
            for h, ci in enumerate(intervals)]


def _values(spec: ClaimSpec, hits: np.ndarray, counts: np.ndarray) -> list[float | None]:
    """Per head: pooled (total hits / total sources) or the mean of the sentences' values."""
    kept = counts > 0
    if not kept.any():
        return [None] * hits.shape[1]
    if spec.average == "sentence":
        ratios = hits[kept] / counts[kept, None]  # [sentence, head]
        return [math.fsum(column) / len(column) for column in ratios.T]
    n = int(counts.sum())
    return [math.fsum(column) / n for column in hits.T]


def _baseline(spec: ClaimSpec, baseline_hits: BaselineHits,
              counts: np.ndarray) -> Baseline | None:
    """The best offset's value, averaged as the claim's value is."""
    if spec.average != "sentence":
        totals = {k: math.fsum(np.ravel(np.asarray(h, dtype=np.float64)))
                  for k, h in baseline_hits.items()}
        best = best_baseline(totals, int(counts.sum()))
        return Baseline(*best) if best is not None else None
    kept = counts > 0
    if not kept.any():
        return None
    means = {}
    for k, per_sentence in baseline_hits.items():
        array = np.asarray(per_sentence, dtype=np.float64)
        if array.shape != counts.shape:
            raise ValueError(f"average: sentence needs the baseline's hits per sentence "
                             f"({counts.shape[0]}), got shape {array.shape}")
        means[k] = math.fsum(array[kept] / counts[kept]) / int(kept.sum())
    best = best_baseline(means, 1)
    return Baseline(*best) if best is not None else None


def _outcome(spec: ClaimSpec, counts: np.ndarray, hits: np.ndarray, value: float | None,
             ci: tuple[float, float] | None, texts: Sequence[str], indices: Sequence[int],
             baseline: Baseline | None, warnings: tuple[str, ...], dropped: int,
             ci_note: str | None) -> HeadOutcome:
    n = int(counts.sum())
    per_sentence = {int(s): float(hits[s] / counts[s]) for s in np.flatnonzero(counts > 0)}
    failure, failed = None, None
    if spec.per == "sentence":
        failing = [s for s, v in per_sentence.items() if not spec.expect.holds(v)]
        passed = n > 0 and not failing
        order = sorted(failing, key=lambda s: (len(texts[s]), per_sentence[s], indices[s]))
        counterexamples: tuple[str, ...] | None = tuple(texts[s] for s in order)
        sentences: int | None = len(per_sentence)
        failed = len(failing)
        if failing:
            failure = sentences_missing(spec.expect, [per_sentence[s] for s in failing],
                                        len(per_sentence))
    else:
        passed = value is not None and spec.expect.holds(value)
        if passed and spec.confidence is not None and not spec.expect.is_unchanged:
            if ci is not None:
                passed = spec.expect.holds_interval(*ci)
            else:
                passed = False
                failure = (f"confidence {spec.confidence:g} needs the whole interval to meet the "
                           f"expectation, and there is none ({ci_note}): add sentences or "
                           f"drop confidence")
        counterexamples, sentences = None, None
    meets = bool(passed)
    beaten = None
    if baseline is not None and value is not None:
        beaten = value > baseline.value + spec.margin
        passed = passed and beaten
    worst = sorted(per_sentence, key=lambda s: (closeness(spec.expect, per_sentence[s]),
                                                indices[s]))[:WORST]
    return HeadOutcome(
        value=value, ci=ci, n=n, left_out=dropped, passed=bool(passed), sentences=sentences,
        counterexamples=counterexamples, baseline=baseline, warnings=warnings,
        worst=tuple(int(indices[s]) for s in worst), baseline_beaten=beaten,
        meets_expectation=meets, ci_note=ci_note if ci is None and value is not None else None,
        failure=failure, sentences_failed=failed)


def sentences_missing(expect: Expectation, values: Sequence[float], checked: int) -> str:
    """``2 of 12 sentences below 0.8 (worst 0.610)``: the sentences that miss the expectation
    (``values``: their own values), of ``checked``, and the one furthest from it."""
    worst = min(values, key=lambda v: closeness(expect, v))
    noun = "sentence" if checked == 1 else "sentences"
    return f"{len(values)} of {checked} {noun} {_missing_side(expect)} (worst {worst:.3f})"


def _missing_side(expect: Expectation) -> str:
    """Where a value that misses ``expect`` lies: ``below 0.8``, ``outside 0.2 to 0.5``."""
    sides = {">=": "below", ">": "at or below", "<=": "above", "<": "at or above"}
    if expect.op in sides:
        return f"{sides[expect.op]} {expect.low:g}"
    high = expect.high if expect.high is not None else 1.0
    return f"outside {expect.low:g} to {high:g}"


def _intervals(spec: ClaimSpec, hits: np.ndarray, counts: np.ndarray,
               n: int) -> tuple[list[tuple[float, float] | None], str | None]:
    """Per head: Wilson for pooled shares; the sentence bootstrap (shared resamples) for mass,
    entropy and every ``average: sentence`` value (of the mean of the sentences' values) — or,
    when too few sentences counted a source for a bootstrap, no interval and a note saying so."""
    level = spec.confidence if spec.confidence is not None else DEFAULT_CONFIDENCE
    if spec.average != "sentence" and spec.measure.is_share:
        return [wilson(float(total), n, level) for total in hits.sum(axis=0)], None
    kept = counts > 0
    sentences, needed = int(kept.sum()), bootstrap_sentences_needed(level)
    if 0 < sentences < needed:
        noun = "sentence" if sentences == 1 else "sentences"
        return [None] * hits.shape[1], f"{sentences} {noun}, the bootstrap needs {needed}"
    if spec.average == "sentence":
        ratios = np.zeros_like(hits)
        ratios[kept] = hits[kept] / counts[kept, None]
        return bootstrap_ratios(ratios, kept.astype(np.float64), level), None
    return bootstrap_ratios(hits, counts, level), None


def health_warnings(spec: ClaimSpec, n: int, left_out: int, sentences: int) -> tuple[str, ...]:
    """Human-readable warnings when a result is weaker than it looks."""
    source, target = spec.claim.source, spec.claim.target
    total = n + left_out
    if n == 0:
        if total:
            return (f"no source was counted: all {total} '{source}' sources in {sentences} "
                    f"sentence(s) were left out because none had a '{target}' target; the claim "
                    f"has no value and fails — check the target or add sentences that have one",)
        return (f"no source was counted: no position in {sentences} sentence(s) is a "
                f"'{source}' source; the claim has no value and fails — check the source or "
                f"add sentences that contain one",)
    warnings = []
    if n < FEW_SOURCES:
        warnings.append(f"only {n} source(s) counted (fewer than {FEW_SOURCES}): the value rests "
                        f"on little evidence — add sentences")
    if left_out * 2 > total:
        warnings.append(f"{left_out} of {total} '{source}' sources were left out (more than "
                        f"half) because they had no '{target}' target in their sentence")
    return tuple(warnings)


def pick_head(expect: Expectation, outcomes: Sequence[HeadOutcome]) -> int:
    """Index of the head to report for ``any``/``none``: the passing head with the best value in
    the expectation's direction, or, when none passes, the one closest to passing. Ties go to
    the earlier head."""
    candidates = [i for i, o in enumerate(outcomes) if o.passed] or list(range(len(outcomes)))
    return max(candidates, key=lambda i: (closeness(expect, outcomes[i].value), -i))

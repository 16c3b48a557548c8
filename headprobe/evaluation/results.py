"""Immutable, serialisable results (SPEC §5): what reporters read, never the evaluator's state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_DIGITS = 6


def format_value(value: float | None) -> str:
    """A measured figure as shown everywhere: three decimals, or ``n/a`` without a value."""
    return "n/a" if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class SentenceScore:
    """One claim, one head, one sentence.

    Attributes:
      n: sources counted (each had at least one target).
      left_out: sources dropped because they had no target in this sentence.
      hits: the hit count (argmax, topk) or the summed attention on targets (mass).
      value: ``hits / n``, or ``None`` when ``n == 0``.
    """

    n: int
    left_out: int
    hits: float
    value: float | None

    @classmethod
    def of(cls, n: int, left_out: int, hits: float) -> SentenceScore:
        return cls(n=n, left_out=left_out, hits=float(hits), value=hits / n if n else None)


@dataclass(frozen=True)
class Baseline:
    """The best fixed-offset baseline: always attending to ``i + offset`` scores ``value``
    (in report.json ``{"offset": k, "value": v}``)."""

    offset: int
    value: float

    def to_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "value": _round(self.value)}


@dataclass(frozen=True)
class HeadValue:
    """One matched head of an ``any``/``none`` claim: its value, interval, counts and whether it
    meets the expectation on its own."""

    head: str
    value: float | None
    ci: tuple[float, float] | None
    n: int
    left_out: int
    passed: bool
    ci_note: str | None = None  # why there is no interval although there is a value

    def to_json(self) -> dict[str, Any]:
        data = {"head": self.head, "value": _round(self.value),
                "ci": None if self.ci is None else [_round(self.ci[0]), _round(self.ci[1])],
                "n": self.n, "left_out": self.left_out, "passed": self.passed}
        if self.ci_note is not None:
            data["ci_note"] = self.ci_note
        return data


@dataclass(frozen=True)
class ClaimResult:
    """One test outcome: one claim on one head (``each``) or on a head set (``any``/``none``).

    ``head`` is the concrete head (``each``), the best head (``any``) or the head that came
    closest to passing / the one that passed (``none``). ``claim`` and ``expect`` are as written.
    ``worst`` holds the indices (as given to `ClaimAccumulator.add`) of up to three sentences
    furthest from meeting the expectation, worst first, for failure diagrams. ``sentences`` and
    ``counterexamples`` are set for ``per: sentence``; ``baseline`` for ``baseline: offset``,
    with ``baseline_beaten`` saying whether the value beat it (by the margin). ``heads`` holds
    every matched head's value for ``any``/``none``, best first. ``why`` is the claim's reason as
    written; ``reproduce`` a command that runs just this claim again. ``ci`` is None with a value
    when too few sentences counted for a bootstrap; ``ci_note`` then says so (``1 sentence, the
    bootstrap needs 4``). ``failure`` says why a claim failed when its value does not (``2 of 12
    sentences below 0.8 (worst 0.610)``, with ``sentences_failed`` 2, for ``per: sentence``).
    ``views`` are the interactive views of the figures' sentences (HTML files, SPEC §16), their
    paths relative like the figures'; report.json lists them only when there are some.
    """

    file: str
    id: str
    head: str
    claim: str
    measure: str
    level: str
    model: str
    model_fingerprint: str
    expect: str
    value: float | None
    ci: tuple[float, float] | None
    n: int
    left_out: int
    passed: bool
    figures: tuple[str, ...] = ()
    sentences: int | None = None
    counterexamples: tuple[str, ...] | None = None
    baseline: Baseline | None = None
    warnings: tuple[str, ...] = ()
    worst: tuple[int, ...] = ()
    quantifier: str = "each"
    baseline_beaten: bool | None = None
    heads: tuple[HeadValue, ...] = ()
    why: str | None = None
    reproduce: str | None = None
    meets_expectation: bool = False  # the value alone meets the expectation
    unknown_sentences: int | None = None  # sentences with [UNK] (unknown_words: allow)
    recorded: dict[str, Any] | None = None  # expect: unchanged: the snapshot's entry
    change: float | None = None  # expect: unchanged: value - recorded value
    tolerance: float | None = None  # expect: unchanged
    failure: str | None = None  # why it failed, when the measured line does not say
    average: str = "pool"  # sentence: the value is the mean of the sentences' values
    ci_note: str | None = None  # why there is no interval although there is a value
    sentences_failed: int | None = None  # per: sentence: how many sentences miss
    weighting: str = "attention"  # norm: the measure read Kobayashi's norm weights (§14.1)
    views: tuple[str, ...] = ()  # interactive views (SPEC §16) beside the figures, like them

    @property
    def failed_only_on_baseline(self) -> bool:
        """The value meets the expectation but does not beat the offset baseline."""
        return not self.passed and self.baseline_beaten is False and self.meets_expectation

    def to_json(self) -> dict[str, Any]:
        """The report.json entry: SPEC §5 keys in order, then the optional ones that apply."""
        data: dict[str, Any] = {
            "file": self.file, "id": self.id, "head": self.head, "claim": self.claim,
            "measure": self.measure, "level": self.level, "model": self.model,
            "model_fingerprint": self.model_fingerprint, "expect": self.expect,
            "value": _round(self.value),
            "ci": None if self.ci is None else [_round(self.ci[0]), _round(self.ci[1])],
            "n": self.n, "left_out": self.left_out, "passed": self.passed,
            "figures": list(self.figures),
        }
        if self.views:
            data["views"] = list(self.views)
        if self.ci_note is not None:
            data["ci_note"] = self.ci_note
        if self.average != "pool":
            data["average"] = self.average
        if self.weighting != "attention":
            data["weighting"] = self.weighting
        if self.sentences is not None:
            data["sentences"] = self.sentences
        if self.counterexamples is not None:
            data["counterexamples"] = list(self.counterexamples)
        if self.baseline is not None:
            data["baseline"] = self.baseline.to_json()
            data["baseline_beaten"] = self.baseline_beaten
        if self.heads:
            data["quantifier"] = self.quantifier
            data["heads"] = [h.to_json() for h in self.heads]
        if self.expect == "unchanged":
            data["recorded"] = self.recorded
            data["change"] = _round(self.change)
            data["tolerance"] = self.tolerance
        if self.failure is not None:
            data["failure"] = self.failure
        if self.unknown_sentences is not None:
            data["sentences_with_unknown_words"] = self.unknown_sentences
        if self.why is not None:
            data["why"] = self.why
        if self.reproduce is not None:
            data["reproduce"] = self.reproduce
        data["warnings"] = list(self.warnings)
        return data


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), _DIGITS)

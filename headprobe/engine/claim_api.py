"""Claims written in Python: ``headprobe_model.claim("L2H9: token -> next").over(S).argmax()``.

The result of a measure is a `Measured`: it prints with its value, interval and n, and compares to
numbers (``assert result >= 0.55``). A comparison records the claim and its outcome for the run's
report.json; when an ``assert`` on it fails, the plugin's ``pytest_assertrepr_compare`` draws the
same failure diagrams as YAML claims and lists their paths.

    def test_next_token(headprobe_model):
        result = headprobe_model.claim("L2H9: token -> next").over(SENTENCES).argmax()
        assert result >= 0.55
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Container, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from headprobe import notebook
from headprobe.claims.language import effect_measure, parse_claim, parse_expectation
from headprobe.claims.sentences import parse_annotated
from headprobe.claims.spec import (
    ABLATIONS,
    AVERAGES,
    BASELINES,
    EFFECTS,
    LEVELS,
    PERS,
    QUANTIFIERS,
    WEIGHTINGS,
    ClaimSpec,
    Expectation,
    Measure,
    Sentence,
)
from headprobe.engine.effect_claims import measure_effects
from headprobe.errors import ClaimFileError, UsageError, did_you_mean
from headprobe.evaluation.accumulate import ClaimAccumulator
from headprobe.evaluation.results import ClaimResult, format_value
from headprobe.heads import expand_heads

if TYPE_CHECKING:  # the handle's module imports this one
    from headprobe.engine.models import ModelHandle

#: Told of every decided claim: ``recorder(measured, spec, result)``.
Recorder = Callable[["Measured", ClaimSpec, ClaimResult], None]

_OPS = {">=": "__ge__", ">": "__gt__", "<=": "__le__", "<": "__lt__"}


def build_claim(model: ModelHandle, text: str, *, level: str = "token", per: str = "pool",
                quantifier: str = "each", baseline: str | None = None, margin: float = 0.0,
                average: str = "pool", weighting: str = "attention") -> ClaimQuery:
    """`ModelHandle.claim`: the claim ``text`` about ``model``'s heads, written where the
    caller's code is (errors and reports name that file and line)."""
    check_choice("level", level, LEVELS)
    check_choice("per", per, PERS)
    check_choice("average", average, AVERAGES)
    check_choice("quantifier", quantifier, QUANTIFIERS)
    check_choice("weighting", weighting, WEIGHTINGS)
    if baseline is not None and baseline not in BASELINES:
        raise UsageError(f"baseline: expected None or 'offset', got {baseline!r}")
    file, line, name = _caller()
    try:
        claim = parse_claim(text)
    except ClaimFileError as error:
        raise error.located(file=file, line=line, field="claim") from None
    spec = ClaimSpec(file=file, line=line, id=name, claim=claim, over=("python",),
                     expect=Expectation(">=", 0.0, text="(none yet)"), level=level,  # type: ignore[arg-type]
                     quantifier=quantifier, per=per, baseline=baseline,  # type: ignore[arg-type]
                     margin=float(margin), claim_text=text,
                     average=average, weighting=weighting)  # type: ignore[arg-type]
    return ClaimQuery(model, spec, ())


@dataclasses.dataclass(frozen=True)
class ClaimQuery:
    model: ModelHandle
    spec: ClaimSpec
    sentences: tuple[Sentence, ...]

    def over(self, sentences: Iterable[str | Sentence]) -> ClaimQuery:
        """Sentences (annotated ``[text]{label}`` strings or `Sentence` objects) to measure on."""
        parsed = tuple(s if isinstance(s, Sentence) else parse_annotated(str(s), "python")
                       for s in ([sentences] if isinstance(sentences, (str, Sentence))
                                 else sentences))
        return dataclasses.replace(self, sentences=self.sentences + parsed)

    def argmax(self) -> Measured:
        return self._measure(Measure("argmax"))

    def mass(self) -> Measured:
        return self._measure(Measure("mass"))

    def topk(self, k: int) -> Measured:
        if not isinstance(k, int) or k < 1:
            raise UsageError(f"topk: expected a positive integer K, got {k!r}")
        return self._measure(Measure("topk", k))

    def entropy(self) -> Measured:
        """The mean normalised entropy of the source rows (a claim without a target)."""
        return self._measure(Measure("entropy"))

    def effect(self, ablation: str = "mean", effect: str = "hidden",
               together: bool = False) -> Measured:
        """What removing the heads does at the source tokens (SPEC §14.2): a claim without a
        target, ``ablation`` mean or zero, ``effect`` hidden, embedding or kl, each head
        removed alone or all ``together``."""
        check_choice("ablation", ablation, ABLATIONS)
        check_choice("effect", effect, EFFECTS)
        if not isinstance(together, bool):
            raise UsageError(f"together: expected True or False, got {together!r}")
        if self.spec.weighting != "attention":
            raise UsageError("weighting='norm' chooses what attention measures read; .effect() "
                             "removes heads instead: leave weighting out")
        return self._measure(effect_measure(ablation, effect, together))

    def _measure(self, measure: Measure) -> Measured:
        claim = self.spec.claim
        call = f".{measure.kind}()"
        if measure.needs_target and claim.target is None:
            raise UsageError(f"claim {self.spec.claim_text!r} has no target: {measure}() "
                             f"measures attention on targets; write it as "
                             f"'{claim} -> TARGET', or call .entropy() or .effect()")
        if not measure.needs_target and claim.target is not None:
            raise UsageError(f"claim {self.spec.claim_text!r}: {call} needs no target; "
                             f"write the claim as '{','.join(map(str, claim.heads))}: "
                             f"{claim.source}'")
        if not measure.needs_target and self.spec.baseline is not None:
            raise UsageError(f"baseline='offset' does not apply to {call}; remove it")
        if not self.sentences:
            raise UsageError(f"claim {self.spec.claim_text!r} has no sentences: call "
                             f".over([...]) before measuring")
        model = self.model
        spec = dataclasses.replace(self.spec, measure=measure)
        try:
            heads = expand_heads(spec.claim.heads, model.num_layers, model.num_heads)
        except ClaimFileError as error:
            raise error.located(file=spec.file, line=spec.line, field="claim") from None
        if measure.kind == "effect":
            accumulator = measure_effects(model, spec, self.sentences, heads)
            return Measured(self.model, spec, self.sentences, accumulator)
        accumulator = ClaimAccumulator(spec, heads, windows=model.windows)
        runs = model.run([s.text for s in self.sentences], hidden_states=False,
                         mlm_logits=False, num_layers=max(h.layer for h in heads),
                         weighting=spec.weighting)
        for index, (sentence, run) in enumerate(zip(self.sentences, runs)):
            accumulator.add(index, sentence, run)
        return Measured(self.model, spec, self.sentences, accumulator)


class Measured:
    """A measured claim: compare it to a number to decide it (``>=``, ``>``, ``<=``, ``<``).

    With several heads (``L3H*``) and quantifier ``each`` every head must meet the bound; ``any``
    needs one; ``none`` needs none. ``.value``, ``.ci``, ``.n``, ``.left_out``, ``.head`` describe
    the chosen head (the only one, or the best/offending one); ``.results`` holds all.
    """

    def __init__(self, model: ModelHandle, spec: ClaimSpec, sentences: Sequence[Sentence],
                 accumulator) -> None:
        self.model = model
        self.spec = spec
        self.sentences = tuple(sentences)
        self._accumulator = accumulator
        self.decided: ClaimResult | None = None  # the result of the last comparison
        self._expect: Expectation | None = None  # the bound of the last comparison
        #: One result per head with its value, interval and n; a comparison decides the claim
        #: (``decided``).
        self.results = accumulator.head_results(model=model.name,
                                                fingerprint=model.fingerprint)
        # Described: the one head, the first of several (each), or the chosen one (any/none).
        first = self._judged()[0]
        self.value, self.ci, self.n, self.left_out = first.value, first.ci, first.n, first.left_out
        self.ci_note = first.ci_note  # why there is no interval although there is a value
        self.head = first.head

    def _judged(self, expect: Expectation | None = None):
        """Results of the measured numbers, judged against ``expect`` (no new forward pass)."""
        model = self.model
        return self._accumulator.results(model=model.name, fingerprint=model.fingerprint,
                                         expect=expect)

    def _decide(self, op: str, bound: float) -> bool:
        expect = parse_expectation(f"{op} {bound}")
        self._expect = expect
        spec = dataclasses.replace(self.spec, expect=expect)
        results = self._judged(expect)
        passed = all(r.passed for r in results)
        failing = [r for r in results if not r.passed]
        self.decided = failing[0] if failing else results[0]
        if self.model.recorder is not None:
            for result in results:
                self.model.recorder(self, spec, result)
        return passed

    def __ge__(self, bound: float) -> bool:
        return self._decide(">=", bound)

    def __gt__(self, bound: float) -> bool:
        return self._decide(">", bound)

    def __le__(self, bound: float) -> bool:
        return self._decide("<=", bound)

    def __lt__(self, bound: float) -> bool:
        return self._decide("<", bound)

    def __float__(self) -> float:
        if self.value is None:
            raise ValueError(f"{self!r} has no value: no source was counted")
        return float(self.value)

    def __repr__(self) -> str:
        ci = (f", 95% CI [{format_value(self.ci[0])}, {format_value(self.ci[1])}]"
              if self.ci else f", CI n/a ({self.ci_note})" if self.ci_note else "")
        return (f"<{self.spec.claim_text} on {self.head}: {self.spec.measure} = "
                f"{format_value(self.value)}{ci}, n={self.n}, left out {self.left_out}>")


    def _repr_mimebundle_(self, include: Container[str] | None = None,
                          exclude: Container[str] | None = None) -> dict[str, str]:
        """What a notebook shows (SPEC §16): per head the value, 95% interval, n and, once
        compared to a bound, passed or failed; and the layers x heads grid of the HTML
        report."""
        expect = self._expect
        results = self._accumulator.head_results(model=self.model.name,
                                                 fingerprint=self.model.fingerprint,
                                                 expect=expect)
        quantifier = self.spec.quantifier
        lines = [self._headline()] + [_result_line(r, self.spec.measure, expect, quantifier)
                                      for r in results[:_LISTED]]
        if len(results) > _LISTED:
            lines.append(f"... {len(results) - _LISTED} more heads (.results lists them all)")
        rows = [[r.head, format_value(r.value), _interval(r), str(r.n), str(r.left_out),
                 "" if expect is None else str(expect),
                 "" if expect is None else _verdict(r.passed, quantifier)]
                for r in results[:_LISTED]]
        outcomes = [f"hp-{_status(r.passed, quantifier)}" if expect is not None else ""
                    for r in results[:_LISTED]]
        table = notebook.table(("head", "value", "95% interval", "n", "left out", "expected",
                                "result" if quantifier == "each" else "this head"),
                               rows, numeric={1, 3, 4}, classes={6: outcomes})
        warnings = dict.fromkeys(w for r in results for w in r.warnings)
        markup = notebook.page(
            self._headline(), table,
            notebook.note(lines[-1]) if len(results) > _LISTED else "",
            *(notebook.note(f"warning: {w}") for w in warnings),
            notebook.grid(self._cells(results, expect),
                          caption=f"{self.model.name}: layers x heads (the claim's heads "
                                  f"coloured by their outcome, with their value)"))
        return notebook.bundle("\n".join(lines), markup, include, exclude)

    def _headline(self) -> str:
        spec = self.spec
        said = (f"claim {spec.claim_text!r} ({spec.measure}, {spec.level} level"
                + (f", {spec.quantifier}" if spec.quantifier != "each" else "")
                + (f", weighting {spec.weighting}" if spec.weighting != "attention" else "")
                + f") over {len(self.sentences)} sentences")
        if self._expect is None:
            return f"{said}: not compared to a bound yet"
        passed = all(r.passed for r in self._judged(self._expect))
        return f"{said}: {'passed' if passed else 'failed'} {self._expect}"

    def _cells(self, results: Sequence[ClaimResult],
               expect: Expectation | None) -> list[list[notebook.Cell | None]]:
        model = self.model
        heads = expand_heads(self.spec.claim.heads, model.num_layers, model.num_heads)
        by_head = dict(zip(heads, results)) if len(results) == len(heads) else \
            {head: results[0] for head in heads}  # heads removed together: one result
        cells: list[list[notebook.Cell | None]] = [[None] * model.num_heads
                                                   for _ in range(model.num_layers)]
        for head, result in by_head.items():
            quantifier = self.spec.quantifier
            status = "measured" if expect is None else _status(result.passed, quantifier)
            cells[head.layer - 1][head.head - 1] = notebook.Cell(
                value=format_value(result.value), status=status,
                title=_result_line(result, self.spec.measure, expect, quantifier))
        return cells


_LISTED = 64  # heads a display lists (the grid shows them all)


def _interval(result: ClaimResult) -> str:
    if result.ci is not None:
        return f"[{format_value(result.ci[0])}, {format_value(result.ci[1])}]"
    return f"n/a ({result.ci_note})" if result.ci_note else "n/a"


def _verdict(meets: bool, quantifier: str) -> str:
    """A head's word: ``passed``/``failed`` (each); with any/none the claim is decided over
    every head, and a head only meets the bound or not."""
    if quantifier == "each":
        return "passed" if meets else "failed"
    return "meets it" if meets else "does not meet it"


def _status(meets: bool, quantifier: str) -> str:
    """A head's colour: with ``any`` the heads that meet the bound are good news, with
    ``none`` bad news, the others neither."""
    if quantifier == "any":
        return "passed" if meets else "measured"
    if quantifier == "none":
        return "failed" if meets else "passed"
    return "passed" if meets else "failed"


def _result_line(result: ClaimResult, measure: Measure, expect: Expectation | None,
                 quantifier: str = "each") -> str:
    """``L2H9 argmax 0.910 [0.880, 0.930] >= 0.8 passed (n=410)``."""
    judged = "" if expect is None else f" {expect} {_verdict(result.passed, quantifier)}"
    return (f"{result.head} {measure} {format_value(result.value)} {_interval(result)}"
            f"{judged} (n={result.n})")


def check_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{field}: expected one of {', '.join(choices)}, got {value!r}"
                         f"{did_you_mean(value, choices)}")


_PACKAGE = Path(__file__).resolve().parent.parent  # headprobe/


def _caller() -> tuple[str, int, str]:
    """File, line and function of the code that wrote the claim (for reports and errors): the
    first frame outside the headprobe package, as `warnings.warn`'s ``stacklevel`` would point
    (``model.claim(...)`` goes through `headprobe.model.loaded` first)."""
    frame = inspect.currentframe()
    try:
        while frame is not None and _PACKAGE in Path(frame.f_code.co_filename).resolve().parents:
            frame = frame.f_back
        if frame is None:
            return "<python>", 0, "claim"
        return frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name
    finally:
        del frame

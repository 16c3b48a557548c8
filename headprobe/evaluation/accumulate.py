"""Scoring claims against runs: one sentence at a time, or streamed into a `ClaimAccumulator`.

The accumulator keeps only small per-sentence numbers (counted sources, left-out sources, hits
per head, baseline hits per offset, and the sentence text for counterexamples), never the `Run`,
so any number of sentences can stream through it. Sources and targets are found once per
(run, level, claim) and shared by every head; word-level matrices are computed only for the
heads asked for (see `positions.level_view`).

Heads of local (sliding-window) layers (SPEC §7c; ``windows`` gives each layer's reach) are
scored on the sources that have a target within their reach: the others are left out for
those heads, with a warning that says how many and why, so a local head is neither failed for
what its window rules out nor credited by a baseline it could not have beaten. Their entropy is
over the positions they can reach. Such heads' counts are kept per window (`WindowNumbers`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from headprobe.claims.spec import ClaimSpec, Expectation, Sentence
from headprobe.evaluation.measures import BASELINE_OFFSETS, baseline_hits, source_hits
from headprobe.evaluation.positions import (
    LevelView,
    Selection,
    level_view,
    reach,
    select,
    within_window,
)
from headprobe.evaluation.results import ClaimResult, HeadValue, SentenceScore
from headprobe.evaluation.verdict import (
    HeadOutcome,
    closeness,
    health_warnings,
    judge_heads,
    pick_head,
)
from headprobe.heads import Head
from headprobe.runs import Run


def _selection(spec: ClaimSpec, sentence: Sentence, run: Run) -> Selection:
    view = level_view(run, spec.level)
    return select(view, spec.claim.source, spec.claim.target, tuple(sentence.spans))


def _hits(spec: ClaimSpec, heads: tuple[Head, ...], selection: Selection,
          run: Run, half: int | None = None) -> np.ndarray:
    """float64 ``[head]``: hits summed over the sentence's counted sources, per head (heads
    reaching ``half`` positions each side: entropy over the positions they reach)."""
    view = level_view(run, spec.level)
    rows = view.rows(heads, selection.sources)  # [head, source, position]
    hits = source_hits(rows, selection.targets, spec.measure)  # [head, source]
    if half is not None and spec.measure.kind == "entropy" and view.size > 1:
        reachable = _reach(view, selection.sources, half)  # [source]
        scale = np.where(reachable > 1,
                         np.log(view.size) / np.log(np.maximum(reachable, 2)), 0.0)
        hits = hits * scale
    return hits.sum(axis=-1)


def _reach(view: LevelView, sources: np.ndarray, half: int) -> np.ndarray:
    """int ``[source]``: how many positions of the view each source can reach."""
    return reach(view.groups, half, np.asarray(sources, dtype=np.int64)).sum(axis=1)


def _baseline_of(spec: ClaimSpec, selection: Selection) -> tuple[float, ...] | None:
    if spec.baseline != "offset":
        return None
    by_offset = baseline_hits(selection.sources, selection.targets)
    return tuple(float(by_offset[k]) for k in BASELINE_OFFSETS)


def score_sentence(spec: ClaimSpec, head: Head, sentence: Sentence, run: Run,
                   half: int | None = None) -> SentenceScore:
    """The claim's score on one head for one sentence (``value`` is ``None`` when no source
    counted), as `ClaimAccumulator` scores it: ``half``, the head's reach when it is in a local
    layer (the model's ``windows[layer - 1]``). Cheap to call repeatedly, e.g. while shrinking a
    failing sentence."""
    selection = head_selection(spec, sentence, run, half)
    hits = _hits(spec, (head,), selection, run, half)[0]
    return SentenceScore.of(selection.n, selection.left_out, float(hits))


def head_selection(spec: ClaimSpec, sentence: Sentence, run: Run,
                   half: int | None = None) -> Selection:
    """The sources and targets one head is scored on: the claim's, less what a local head
    (reaching ``half`` positions each side) cannot reach (`within_window`)."""
    selection = _selection(spec, sentence, run)
    if half is None or spec.claim.target is None:
        return selection
    return within_window(level_view(run, spec.level), selection, half)


@dataclass(frozen=True)
class WindowNumbers:
    """The counted and left-out sources and baseline hits of one sentence for the heads that
    reach one window (`within_window`)."""

    n: int
    left_out: int
    baseline: tuple[float, ...] | None = None


@dataclass(frozen=True, eq=False)
class SentenceNumbers:
    """What a `ClaimAccumulator` keeps of one sentence: counted and left-out sources, hits per
    head (float64 ``[head]``) and, for ``baseline: offset``, hits per offset in the order of
    `BASELINE_OFFSETS` (else ``None``); ``windowed``: the same counts for the heads of local
    layers, one per window the claim's heads have (in the accumulator's ``windows`` order). The
    score cache stores exactly these."""

    n: int
    left_out: int
    hits: np.ndarray
    baseline: tuple[float, ...] | None = None
    windowed: tuple[WindowNumbers, ...] = ()


class ClaimAccumulator:
    """Streams sentences for one claim over a set of concrete heads, then gives the results.

    >>> acc = ClaimAccumulator(spec, heads)          # doctest: +SKIP
    >>> for i, (sentence, run) in enumerate(zip(sentences, runs)):
    ...     acc.add(i, sentence, run)
    >>> acc.results(model="bert-base-uncased", fingerprint="sha256:...")
    """

    def __init__(self, spec: ClaimSpec, heads: Sequence[Head], *,
                 label: str | None = None,
                 windows: Sequence[int | None] | None = None) -> None:
        """``label``: what results call the one column of numbers instead of its head (the
        heads of an effect claim removed ``together``, as ``L2H1+L2H5``). ``windows``: per
        layer (0-based), how many positions each side its heads reach, None for every position
        (the model's `windows`; None: no layer is local)."""
        if not heads:
            raise ValueError(f"claim {spec.id!r} needs at least one head to evaluate")
        if label is not None and len(heads) != 1:
            raise ValueError("a label names the one column of a claim: give one head")
        self.spec = spec
        self.heads = tuple(heads)
        self.label = label
        reach = spec.claim.target is not None or spec.measure.kind == "entropy"
        self._window_of: tuple[int | None, ...] = tuple(
            windows[head.layer - 1] if windows is not None and reach else None
            for head in self.heads)
        #: the distinct windows of the claim's heads, in order
        self.windows: tuple[int, ...] = tuple(sorted({w for w in self._window_of
                                                      if w is not None}))
        self._windowed: list[tuple[WindowNumbers, ...]] = []
        self._indices: list[int] = []
        self._texts: list[str] = []
        self._counts: list[int] = []
        self._left_out: list[int] = []
        self._hits: list[np.ndarray] = []  # per sentence: float64 [head]
        self._baseline: dict[int, list[float]] = {k: [] for k in BASELINE_OFFSETS}

    def __len__(self) -> int:
        return len(self._indices)

    def add(self, index: int, sentence: Sentence, run: Run) -> None:
        """Score one sentence (``index`` is how results refer to it, e.g. in ``worst``)."""
        self.record(index, sentence.text, self.score(sentence, run))

    def score(self, sentence: Sentence, run: Run) -> SentenceNumbers:
        """The numbers of one sentence (pure: records nothing)."""
        selection = _selection(self.spec, sentence, run)
        if not self.windows:
            hits = _hits(self.spec, self.heads, selection, run).astype(np.float64, copy=False)
            return SentenceNumbers(int(selection.n), int(selection.left_out), hits,
                                   _baseline_of(self.spec, selection))
        hits = np.zeros(len(self.heads), dtype=np.float64)
        windowed = []
        for window in (None, *self.windows):
            members = [i for i, w in enumerate(self._window_of) if w == window]
            chosen = head_selection(self.spec, sentence, run, window)
            if window is not None:
                windowed.append(WindowNumbers(int(chosen.n), int(chosen.left_out),
                                              _baseline_of(self.spec, chosen)))
            if members:
                hits[members] = _hits(self.spec, tuple(self.heads[i] for i in members), chosen,
                                      run, window)
        return SentenceNumbers(int(selection.n), int(selection.left_out), hits,
                               _baseline_of(self.spec, selection), tuple(windowed))

    def record(self, index: int, text: str, numbers: SentenceNumbers) -> None:
        """Keep one sentence's numbers (from `score` or the score cache)."""
        if numbers.hits.shape != (len(self.heads),):
            raise ValueError(f"claim {self.spec.id!r}: {len(self.heads)} heads, got hits of "
                             f"shape {numbers.hits.shape}")
        if len(numbers.windowed) != len(self.windows):
            raise ValueError(f"claim {self.spec.id!r}: {len(self.windows)} local windows, got "
                             f"numbers for {len(numbers.windowed)}")
        self._indices.append(int(index))
        self._texts.append(text)
        self._counts.append(numbers.n)
        self._left_out.append(numbers.left_out)
        self._hits.append(numbers.hits)
        self._windowed.append(numbers.windowed)
        if self.spec.baseline == "offset":
            if numbers.baseline is None or len(numbers.baseline) != len(BASELINE_OFFSETS):
                raise ValueError(f"claim {self.spec.id!r} has baseline: offset but the numbers "
                                 f"have no hits per offset")
            for k, hits in zip(BASELINE_OFFSETS, numbers.baseline):
                self._baseline[k].append(hits)

    def counts(self) -> dict[int, int]:
        """Sources counted per recorded sentence, by sentence index."""
        return dict(zip(self._indices, self._counts))

    def subset(self, indices: Collection[int]) -> ClaimAccumulator:
        """The same claim over the recorded sentences whose index is in ``indices`` only (a
        part of the sentences, to see how the value varies across parts)."""
        keep = set(indices)
        part = ClaimAccumulator(self.spec, self.heads, label=self.label)
        part._window_of, part.windows = self._window_of, self.windows
        for i, index in enumerate(self._indices):
            if index in keep:
                part._windowed.append(self._windowed[i])
                part._indices.append(index)
                part._texts.append(self._texts[i])
                part._counts.append(self._counts[i])
                part._left_out.append(self._left_out[i])
                part._hits.append(self._hits[i])
                for k, values in self._baseline.items():
                    if values:
                        part._baseline[k].append(values[i])
        return part

    def outcomes(self, spec: ClaimSpec | None = None) -> list[HeadOutcome]:
        """One verdict per head, in the order of ``heads`` (judged under ``spec``, by default the
        accumulator's own).

        Sentences are taken in index order and sums are exact (`math.fsum`, in `verdict`), so
        the verdict, interval and bootstrap do not depend on the order the runs arrived in (a
        forward cache returns them in input order, the model in length order)."""
        order = sorted(range(len(self._indices)), key=self._indices.__getitem__)
        hits = (np.stack([self._hits[i] for i in order]) if self._hits
                else np.zeros((0, len(self.heads))))  # [sentence, head]
        baseline = {k: np.array([values[i] for i in order], dtype=np.float64)
                    for k, values in self._baseline.items()} if self.spec.baseline else {}
        texts = [self._texts[i] for i in order]
        indices = [self._indices[i] for i in order]
        counts = np.array([self._counts[i] for i in order], dtype=np.int64)
        left_out = np.array([self._left_out[i] for i in order], dtype=np.int64)
        if not self.windows:
            return judge_heads(spec or self.spec, counts, left_out, hits, texts, indices,
                               baseline)
        found: dict[int, HeadOutcome] = {}
        for number, window in enumerate((None, *self.windows)):
            members = [i for i, w in enumerate(self._window_of) if w == window]
            if not members:
                continue
            group_counts, group_left, group_baseline = counts, left_out, baseline
            if window is not None:
                numbers = [self._windowed[i][number - 1] for i in order]
                group_counts = np.array([x.n for x in numbers], dtype=np.int64)
                group_left = np.array([x.left_out for x in numbers], dtype=np.int64)
                if self.spec.baseline:
                    group_baseline = {k: np.array([x.baseline[j] if x.baseline else 0.0
                                                   for x in numbers], dtype=np.float64)
                                      for j, k in enumerate(BASELINE_OFFSETS)}
            outside = int((group_left - left_out).sum())
            outcomes = judge_heads(spec or self.spec, group_counts, group_left,
                                   hits[:, members], texts, indices, group_baseline)
            # the health warnings count as left out only sources without a target; those out
            # of the window get their own warning
            warnings = health_warnings(spec or self.spec, int(group_counts.sum()),
                                       int(left_out.sum()), len(texts))
            for i, outcome in zip(members, outcomes):
                if window is not None and outside:
                    outcome = dataclasses.replace(outcome, warnings=(
                        *warnings, _window_warning(self.heads[i], window, outside)))
                found[i] = outcome
        return [found[i] for i in range(len(self.heads))]

    def results(self, *, model: str, fingerprint: str,
                expect: Expectation | None = None) -> list[ClaimResult]:
        """``each``: one result per head; ``any``/``none``: one result naming the chosen head.

        ``expect`` judges the same numbers against another expectation (no new scoring)."""
        spec = self.spec if expect is None else dataclasses.replace(self.spec, expect=expect)
        outcomes = self.outcomes(spec)
        if spec.quantifier == "each":
            return [_result(spec, self._name(head), outcome, outcome.passed, model, fingerprint)
                    for head, outcome in zip(self.heads, outcomes)]
        chosen = pick_head(spec.expect, outcomes)
        some_passed = any(o.passed for o in outcomes)
        passed = some_passed if spec.quantifier == "any" else not some_passed
        order = sorted(range(len(outcomes)), key=lambda i: (-closeness(spec.expect,
                                                                      outcomes[i].value), i))
        heads = tuple(HeadValue(self._name(self.heads[i]), outcomes[i].value, outcomes[i].ci,
                                outcomes[i].n, outcomes[i].left_out, outcomes[i].passed,
                                outcomes[i].ci_note)
                      for i in order)
        result = _result(spec, self._name(self.heads[chosen]), outcomes[chosen], passed, model,
                         fingerprint)
        return [dataclasses.replace(result, heads=heads)]

    def head_results(self, *, model: str, fingerprint: str,
                     expect: Expectation | None = None) -> list[ClaimResult]:
        """One result per head, each judged on its own (as ``each`` would), whatever the
        quantifier: what the Python API's ``.results`` lists."""
        spec = self.spec if expect is None else dataclasses.replace(self.spec, expect=expect)
        return [_result(spec, self._name(head), outcome, outcome.passed, model, fingerprint)
                for head, outcome in zip(self.heads, self.outcomes(spec))]

    def _name(self, head: Head) -> str:
        return self.label if self.label is not None else str(head)


def _window_warning(head: Head, window: int, outside: int) -> str:
    return (f"{head} is in a local layer: it attends to at most {window} tokens on each side "
            f"(attention beyond is 0 by construction); {outside} source(s) with no target "
            f"within its reach were left out")


def _result(spec: ClaimSpec, head: str, outcome: HeadOutcome, passed: bool, model: str,
            fingerprint: str) -> ClaimResult:
    return ClaimResult(
        file=spec.file, id=spec.id, head=head,
        claim=spec.claim_text or str(spec.claim), measure=str(spec.measure),
        level=spec.level, model=model, model_fingerprint=fingerprint,
        expect=str(spec.expect), value=outcome.value, ci=outcome.ci, n=outcome.n,
        left_out=outcome.left_out, passed=passed, sentences=outcome.sentences,
        counterexamples=outcome.counterexamples, baseline=outcome.baseline,
        warnings=outcome.warnings, worst=outcome.worst, quantifier=spec.quantifier,
        baseline_beaten=outcome.baseline_beaten, meets_expectation=outcome.meets_expectation,
        why=spec.why, average=spec.average, ci_note=outcome.ci_note, weighting=spec.weighting,
        failure=None if passed else outcome.failure,
        sentences_failed=outcome.sentences_failed)

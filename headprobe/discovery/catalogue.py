"""The behaviour catalogue (SPEC §12): what a head can be found doing, and the criteria. Pure.

Every behaviour but one is "the tokens' attention goes to T", for a target T of the profile
(`headprobe.evaluation.profile_stats.TARGETS`, source ``token``); a head shows it when **either**

- **argmax** (Voita et al. 2019's positional heads): at least `ARGMAX_CRITERION` (90%) of the
  tokens put their largest weight on T, or
- **mass** (Clark et al. 2019's averages): on average more than `MASS_CRITERION` (half) of a
  token's attention goes to T,

where "at least" is judged on the **lower end of the 95% interval**, not on the estimate, so
that a finding is unlikely to be noise of these sentences. When both hold, the finding is the
argmax one. The last behaviour, ``broad`` (Clark et al. 2019's broad heads), is judged on
``entropy``: rows spread at least as evenly as `BROAD_CRITERION` (0.9) of the way to uniform.

The intervals are those `headprobe check` reports for the same claim on the same sentences (a
Wilson interval for argmax, the sentence bootstrap for mass and entropy), computed from the
profile's per-sentence numbers, so a claim written from a finding passes there.

The catalogue's order is its priority: a head showing several behaviours is labelled (in the
figure) with the first, the more specific first.

A ``[CLS]`` or ``[SEP]`` sink whose ``output-norm`` (SPEC §14.3: what it writes, relative to the
layer's input) is below `NOOP_FRACTION` of the median head's of the same model is a **no-op
sink** (Kobayashi et al. 2020: such heads park their attention where it adds almost nothing).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from headprobe.discovery.margins import Margin, Part, lowest
from headprobe.evaluation.intervals import bootstrap_ratios, bootstrap_sentences_needed, wilson
from headprobe.evaluation.profile_stats import TARGETS, SentenceNumbers
from headprobe.heads import Head

ARGMAX_CRITERION = 0.9
MASS_CRITERION = 0.5
BROAD_CRITERION = 0.9
NOOP_FRACTION = 0.5
SINKS = ("cls", "sep")


@dataclass(frozen=True)
class Behaviour:
    """One entry of the catalogue.

    Attributes:
      name: the behaviour's name, also the claim ids' prefix (``previous``, ``cls``, ``broad``).
      target: the profile target the tokens attend to (None for ``broad``).
      label: a few characters for the figure's cells.
      kind: Kovaleva et al. (2019)'s pattern class it belongs to (``diagonal``, ``vertical``)
        or ``broad``; figures colour cells by it.
      meaning: one line for the table and the docs.
    """

    name: str
    target: str | None
    label: str
    kind: str
    meaning: str


CATALOGUE: tuple[Behaviour, ...] = (
    Behaviour("previous", "previous", "prev", "diagonal", "attends to the previous token"),
    Behaviour("next", "next", "next", "diagonal", "attends to the next token"),
    Behaviour("self", "self", "self", "diagonal", "attends to the token itself"),
    Behaviour("offset-2", "offset:-2", "i-2", "diagonal", "attends two tokens back"),
    Behaviour("offset+2", "offset:+2", "i+2", "diagonal", "attends two tokens ahead"),
    Behaviour("offset-3", "offset:-3", "i-3", "diagonal", "attends three tokens back"),
    Behaviour("offset+3", "offset:+3", "i+3", "diagonal", "attends three tokens ahead"),
    Behaviour("same-word", "same-word", "word", "diagonal",
              "attends to the other pieces of its own word"),
    Behaviour("punct", "punct", "punct", "vertical", "attends to punctuation"),
    Behaviour("sep", "sep", "[SEP]", "vertical", "attends to [SEP] (a sink)"),
    Behaviour("cls", "cls", "[CLS]", "vertical", "attends to [CLS] (a sink)"),
    Behaviour("broad", None, "broad", "broad", "spreads its attention broadly (high entropy)"),
)


def behaviour(name: str) -> Behaviour:
    for entry in CATALOGUE:
        if entry.name == name:
            return entry
    raise KeyError(name)


@dataclass(frozen=True)
class Finding:
    """A head that shows a behaviour: the statistic that qualified it (``argmax``, ``mass`` or
    ``entropy``), its value and 95% interval, ``n`` (tokens counted) and ``sentences``."""

    behaviour: Behaviour
    head: Head
    measure: str
    value: float
    ci: tuple[float, float]
    n: int
    sentences: int
    output_norm: float | None = None  # the head's (SPEC §14.3), when the profile has it
    noop: bool = False  # a [CLS]/[SEP] sink that writes little (see the module docstring)

    @property
    def criterion(self) -> str:
        return criterion_text(self.measure)

    @property
    def short_criterion(self) -> str:
        return {"argmax": f"argmax >= {ARGMAX_CRITERION:g} (Voita)",
                "mass": f"mass >= {MASS_CRITERION:g} (Clark)",
                "entropy": f"entropy >= {BROAD_CRITERION:g} (Clark)"}[self.measure]


def criterion_text(measure: str) -> str:
    if measure == "argmax":
        return (f">= {ARGMAX_CRITERION:.0%} of tokens look most at it (Voita et al. 2019), "
                f"95% lower bound")
    if measure == "mass":
        return (f">= {MASS_CRITERION:.0%} of the attention on average (Clark et al. 2019), "
                f"95% lower bound")
    return f"normalised entropy >= {BROAD_CRITERION:g} (Clark et al. 2019's broad heads), 95% " \
           f"lower bound"


@dataclass(frozen=True)
class Estimate:
    """A statistic of every head: values, 95% intervals and n, from per-sentence numbers."""

    values: np.ndarray  # float64 [head] (NaN where nothing was counted)
    lows: np.ndarray  # float64 [head]
    highs: np.ndarray
    n: int


def estimate(numbers: tuple[SentenceNumbers, ...], target: str | None, measure: str) -> Estimate:
    """Value, interval and n of ``measure`` on ``target`` for every head, pooled over sentences
    exactly as `headprobe check` pools ``L*H*: token -> target`` (or ``L*H*: token`` with
    entropy): Wilson for argmax, the sentence bootstrap (same seed, same sentence order) for
    mass and entropy."""
    if not numbers:
        raise ValueError("no sentences")
    heads = numbers[0].entropy.shape[0]
    if measure == "entropy":
        counts = np.array([s.sources for s in numbers], dtype=np.int64)
        hits = np.stack([s.entropy for s in numbers])  # [sentence, head]
    else:
        t = TARGETS.index(target or "")
        counts = np.array([int(s.counted[t]) for s in numbers], dtype=np.int64)
        field = "argmax" if measure == "argmax" else "mass"
        hits = np.stack([getattr(s, field)[t] for s in numbers])  # [sentence, head]
    n = int(counts.sum())
    nan = np.full(heads, np.nan)
    if n == 0:
        return Estimate(nan, nan.copy(), nan.copy(), 0)
    values = np.array([math.fsum(column) / n for column in hits.T])
    intervals: list[tuple[float, float] | None]
    if measure == "argmax":
        intervals = [wilson(float(total), n) for total in hits.sum(axis=0)]
    elif int((counts > 0).sum()) < bootstrap_sentences_needed():
        intervals = [None] * heads  # too few sentences for a bootstrap: no interval, no finding
    else:
        intervals = list(bootstrap_ratios(hits, counts))
    lows = np.array([np.nan if ci is None else ci[0] for ci in intervals])
    highs = np.array([np.nan if ci is None else ci[1] for ci in intervals])
    return Estimate(values, lows, highs, n)


def output_norms(numbers: tuple[SentenceNumbers, ...]) -> np.ndarray | None:
    """float64 ``[head]``: each head's output-norm pooled over the sentences' tokens, or None
    when the numbers have none."""
    sums = [s.output_norm for s in numbers if s.output_norm is not None]
    tokens = sum(s.tokens for s in numbers)
    if not sums or len(sums) != len(numbers) or tokens == 0:
        return None
    return np.sum(sums, axis=0) / tokens


def find_behaviours(numbers: tuple[SentenceNumbers, ...],
                    heads: tuple[Head, ...]) -> list[Finding]:
    """Every (behaviour, head) that meets its criterion, in catalogue order, heads in order;
    sinks marked no-op when they write little (see the module docstring).

    ``numbers`` are a profile's per-sentence numbers (`Profile.per_sentence`) at either level.
    """
    findings = _found(numbers, heads)
    norms = output_norms(numbers)
    if norms is None:
        return findings
    small = NOOP_FRACTION * float(np.median(norms))
    return [dataclasses.replace(f, output_norm=float(norms[heads.index(f.head)]),
                                noop=f.behaviour.name in SINKS
                                and norms[heads.index(f.head)] < small)
            for f in findings]


def _found(numbers: tuple[SentenceNumbers, ...], heads: tuple[Head, ...]) -> list[Finding]:
    findings: list[Finding] = []
    sentences = len(numbers)
    for entry in CATALOGUE:
        if entry.target is None:
            broad = estimate(numbers, None, "entropy")
            findings += [Finding(entry, head, "entropy", float(broad.values[h]),
                                 (float(broad.lows[h]), float(broad.highs[h])), broad.n,
                                 sentences)
                         for h, head in enumerate(heads) if broad.lows[h] >= BROAD_CRITERION]
            continue
        argmax = estimate(numbers, entry.target, "argmax")
        mass = estimate(numbers, entry.target, "mass")
        for h, head in enumerate(heads):
            for measure, got, criterion in (("argmax", argmax, ARGMAX_CRITERION),
                                            ("mass", mass, MASS_CRITERION)):
                if got.lows[h] >= criterion:
                    findings.append(Finding(entry, head, measure, float(got.values[h]),
                                            (float(got.lows[h]), float(got.highs[h])), got.n,
                                            sentences))
                    break
    return findings


def closest(numbers: tuple[SentenceNumbers, ...], heads: tuple[Head, ...],
            entry: Behaviour) -> Finding | None:
    """The head nearest to showing ``entry`` (for a behaviour no head shows, SPEC §12 v3): the
    one whose 95% lower bound comes closest to its criterion, on argmax or mass (entropy for
    ``broad``), with that statistic's value and interval; None when nothing was counted."""
    sentences = len(numbers)
    measures = (("entropy", BROAD_CRITERION),) if entry.target is None else (
        ("argmax", ARGMAX_CRITERION), ("mass", MASS_CRITERION))
    best: tuple[float, Finding] | None = None
    for measure, criterion in measures:
        got = estimate(numbers, entry.target, measure)
        for h, head in enumerate(heads):
            if math.isnan(got.lows[h]):
                continue
            gap = criterion - float(got.lows[h])
            if best is None or gap < best[0]:
                best = (gap, Finding(entry, head, measure, float(got.values[h]),
                                     (float(got.lows[h]), float(got.highs[h])), got.n,
                                     sentences))
    return None if best is None else best[1]


def margins(numbers: tuple[SentenceNumbers, ...], heads: tuple[Head, ...],
            findings: list[Finding], parts: tuple[Part, ...]) -> list[Margin]:
    """Per finding, the lowest 95% lower bound of its statistic over the whole set and each of
    ``parts`` (`headprobe.discovery.margins`): what its written claim expects."""
    estimates: dict[tuple[str | None, str, str], Estimate] = {}
    found = []
    for finding in findings:
        h = heads.index(finding.head)
        lows, values = {}, {}
        for part in parts:
            key = (finding.behaviour.target, finding.measure, part.name)
            if key not in estimates:
                members = tuple(numbers[i] for i in part.members)
                estimates[key] = estimate(members, finding.behaviour.target, finding.measure)
            lows[part.name] = float(estimates[key].lows[h])
            values[part.name] = float(estimates[key].values[h])
        found.append(lowest(finding.ci[0], lows, values))
    return found


def strongest(findings: list[Finding]) -> dict[Head, Finding]:
    """Each head's first finding in catalogue order (what the figure labels it with)."""
    order = {entry.name: i for i, entry in enumerate(CATALOGUE)}
    chosen: dict[Head, Finding] = {}
    for finding in sorted(findings, key=lambda f: order[f.behaviour.name]):
        chosen.setdefault(finding.head, finding)
    return chosen

"""Thresholds that hold on other sentences (SPEC §12 v3). Pure.

A claim discover writes is meant to hold on sentences of the same kind it was not found on, so
its ``expect`` leaves a margin for how the value varies across sentences, estimated on parts of
the discovery set itself:

- `FOLDS` disjoint folds (sentence i in fold ``i mod FOLDS``): how much a set of that size
  moves by chance;
- `LENGTH_GROUPS` groups by sentence length (the sentence's counted sources, split into thirds):
  several measures depend on length (normalised entropy rises with it; a position's share of a
  short sentence is larger), and other sentence sets have other lengths.

The expectation is the lowest 95% lower bound among the whole set and every part, less the
spread of the parts' values (the largest minus the smallest: other sentences may differ from
the worst part as much as the parts differ from each other), rounded down to a multiple of 0.05
(`headprobe.discovery.ranking.threshold`). A part whose interval cannot be had (too few
sentences for the bootstrap) is left out. ``why:`` names the part that set the bound and the
spread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from headprobe.evaluation.accumulate import ClaimAccumulator

FOLDS = 4
LENGTH_GROUPS = 3
_GROUP_NAMES = ("short", "medium", "long")


@dataclass(frozen=True)
class Part:
    """A part of the discovery set: its name (for ``why:``) and its sentences' indices."""

    name: str
    members: tuple[int, ...]


@dataclass(frozen=True)
class Margin:
    """What a written claim expects (before rounding): ``low``; the part whose lower bound was
    lowest (``"all"``: the whole set) and that bound; the spread of the parts' values."""

    low: float
    where: str
    bound: float
    spread: float


def parts_of(lengths: Sequence[int], unit: str = "tokens") -> tuple[Part, ...]:
    """The folds and the length groups of sentences of ``lengths`` (in ``unit``); groups of
    equal lengths may be uneven (a length is never split between groups)."""
    count = len(lengths)
    found = [Part(f"fold {k + 1} of {FOLDS}", tuple(range(k, count, FOLDS)))
             for k in range(FOLDS)]
    order = sorted(range(count), key=lambda i: (lengths[i], i))
    start = 0
    for g in range(LENGTH_GROUPS):
        end = (g + 1) * count // LENGTH_GROUPS
        while 0 < end < count and lengths[order[end]] == lengths[order[end - 1]]:
            end += 1  # keep one length in one group
        chunk = order[start:end]
        start = max(start, end)
        if chunk:
            low, high = lengths[chunk[0]], lengths[chunk[-1]]
            found.append(Part(f"{_GROUP_NAMES[g]} sentences ({low}-{high} {unit})",
                              tuple(sorted(chunk))))
    return tuple(p for p in found if p.members)


def lowest(whole: float, lows: Mapping[str, float], values: Mapping[str, float]) -> Margin:
    """The lowest of the whole set's lower bound and the parts' (NaN ones left out), less the
    spread of the parts' values (the largest minus the smallest)."""
    where, bound = "all", whole
    for name, low in lows.items():
        if not math.isnan(low) and low < bound:
            where, bound = name, low
    known = [v for v in values.values() if not math.isnan(v)]
    spread = max(known) - min(known) if known else 0.0
    return Margin(bound - spread, where, bound, spread)


def margin_text(margin: Margin) -> str:
    """How the expectation was set, for ``why:``."""
    where = "the whole set" if margin.where == "all" else margin.where
    return (f"expect: the lowest 95% lower bound over the whole set, {FOLDS} folds and "
            f"{LENGTH_GROUPS} length groups ({where}: {margin.bound:.3f}) less the spread of "
            f"the parts' values ({margin.spread:.3f}), rounded down to 0.05")


def result_margins(accumulator: ClaimAccumulator, unit: str = "tokens") -> list[Margin]:
    """Per head of ``accumulator`` (a claim measured over the discovery set, `--for` or
    `--importance`), its `Margin` over the parts of the set (lengths: the sources each sentence
    counted)."""
    counts = accumulator.counts()
    indices = sorted(counts)
    parts = parts_of([counts[i] for i in indices], unit)
    whole = accumulator.head_results(model="", fingerprint="")
    by_part = []
    for part in parts:
        members = [indices[position] for position in part.members]
        by_part.append((part.name, accumulator.subset(members).head_results(model="",
                                                                             fingerprint="")))
    found = []
    for h, result in enumerate(whole):
        lows = {name: _low(results[h].ci) for name, results in by_part}
        values = {name: _value(results[h].value) for name, results in by_part}
        found.append(lowest(_low(result.ci), lows, values))
    return found


def _value(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _low(ci: tuple[float, float] | None) -> float:
    return math.nan if ci is None else float(ci[0])

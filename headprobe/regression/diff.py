"""Diffs of two profiles (SPEC §11): which heads changed, by how much, on which statistic.

`diff_profiles(a, b, tolerance)` checks that the two profiles are comparable (the same level,
sentences and model size; else a `UsageError`) and ranks every head by its largest absolute
change over the statistics: a `HeadChange` per head (the statistic, both values, the change),
largest first (ties: the earlier head). ``changed`` lists the heads whose largest |change|
exceeds the tolerance. A statistic with no value on either side (nothing counted) does not
count; one with a value on one side only counts as a change of its full value. The statistics
compared are those both profiles hold (a profile file written before SPEC §14 has no
``output-norm``; only ``--effects`` profiles have ``effect:hidden``); `ProfileDiff.left_out`
names the others.
"""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

import numpy as np

from headprobe import notebook
from headprobe.errors import UsageError, printable
from headprobe.evaluation.results import format_value
from headprobe.heads import Head
from headprobe.regression.profiles import Profile

DEFAULT_TOLERANCE = 0.05
SHOWN = 20  # heads a diff's table lists unless asked for all
_DIGITS = 6


@dataclass(frozen=True)
class HeadChange:
    """One head's largest change: ``statistic``, its values in A and B, ``change = b - a``."""

    head: Head
    statistic: str
    a: float | None
    b: float | None
    change: float

    def to_json(self) -> dict[str, Any]:
        return {"head": str(self.head), "statistic": self.statistic, "a": _round(self.a),
                "b": _round(self.b), "change": _round(self.change)}


@dataclass(frozen=True)
class ProfileDiff:
    """Every head's largest change, largest first, and the heads beyond the tolerance."""

    a: Profile
    b: Profile
    tolerance: float
    heads: tuple[HeadChange, ...]
    left_out: tuple[str, ...] = ()  # statistics only one side holds: not compared

    @property
    def changed(self) -> tuple[Head, ...]:
        return tuple(c.head for c in self.heads if abs(c.change) > self.tolerance)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` file of SPEC §11 (and ``not_compared``, the statistics one side
        lacks, when there are any)."""
        data = {"a": {"model": self.a.model, "model_fingerprint": self.a.fingerprint},
                "b": {"model": self.b.model, "model_fingerprint": self.b.fingerprint},
                "level": self.a.level,
                "sentences": {"count": self.a.count, "sha256": self.a.sentences_sha256},
                "tolerance": self.tolerance,
                "heads": [c.to_json() for c in self.heads],
                "changed": [str(h) for h in self.changed]}
        if self.left_out:  # only when one side lacks some: the SPEC's keys otherwise
            data["not_compared"] = list(self.left_out)
        return data

    def __repr__(self) -> str:
        largest = self.heads[0] if self.heads else None
        most = (f"; largest {largest.head} {largest.statistic} {largest.change:+.3f}"
                if largest is not None else "")
        return (f"ProfileDiff({notebook.one_line(self.a.model)!r} -> "
                f"{notebook.one_line(self.b.model)!r}: {len(self.changed)} of "
                f"{len(self.heads)} heads changed beyond {self.tolerance:g}{most})")

    def _repr_mimebundle_(self, include: Container[str] | None = None,
                          exclude: Container[str] | None = None) -> dict[str, str]:
        """What a notebook shows (SPEC §16): the grid of changes.png (each head's largest
        change, the heads beyond the tolerance outlined) and the table ``headprobe diff``
        prints (its 20 largest changes)."""
        lines = diff_table(self, more="diff.heads lists them all")
        rows = [[str(c.head), c.statistic, format_value(c.a), format_value(c.b),
                 f"{c.change:+.3f}", "changed" if abs(c.change) > self.tolerance else ""]
                for c in self.heads[:SHOWN]]
        marks = ["hp-failed" if row[-1] else "" for row in rows]
        table = notebook.table(("head", "statistic", "A", "B", "change", ""), rows,
                               numeric={2, 3, 4}, classes={5: marks})
        caption = (f"largest change per head: {self.a.model} -> {self.b.model}; "
                   f"{len(self.changed)} heads beyond the tolerance {self.tolerance:g} "
                   f"(outlined); darker: a larger change")
        markup = notebook.page(lines[0], *(notebook.note(line) for line in lines[1:2]
                                           if line.startswith("not compared")),
                               notebook.grid(self._cells(), caption=caption, palette="red"),
                               table,
                               notebook.note(lines[-1]) if len(self.heads) > SHOWN else "")
        return notebook.bundle("\n".join(lines), markup, include, exclude)

    def _cells(self) -> list[list[notebook.Cell | None]]:
        """changes.png's cells: each head's change and its statistic, shaded by |change|."""
        top = max(max((abs(c.change) for c in self.heads), default=0.0), self.tolerance, 1e-9)
        cells: list[list[notebook.Cell | None]] = [[None] * self.a.num_heads
                                                   for _ in range(self.a.num_layers)]
        for c in self.heads:
            moved = abs(c.change) >= 5e-4
            cells[c.head.layer - 1][c.head.head - 1] = notebook.Cell(
                value=f"{c.change:+.3f}", note=c.statistic if moved else "—",
                shade=abs(c.change) / top, outlined=abs(c.change) > self.tolerance,
                title=f"{c.head}: {c.statistic} {format_value(c.a)} -> {format_value(c.b)} "
                      f"({c.change:+.3f})")
        return cells


def diff_table(diff: ProfileDiff, limit: int | None = SHOWN,
               more: str = "-v lists them all") -> list[str]:
    """The diff as aligned text (what ``headprobe diff`` prints): a headline, then the heads
    ranked by their largest change, at most ``limit`` (``more``: how to see the rest)."""
    changed = diff.changed
    # A model spec from the command line may hold what no terminal can print (a surrogate).
    lines = [printable(f"{len(changed)} of {len(diff.heads)} heads changed beyond the tolerance "
                       f"{diff.tolerance:g} ({diff.a.model} -> {diff.b.model}, {diff.a.count} "
                       f"sentences, level {diff.a.level})")]
    if diff.left_out:
        lines.append(f"not compared (one side has no numbers for them): "
                     f"{', '.join(diff.left_out)}")
    lines.append(f"{'head':<8} {'statistic':<20} {'A':>7} {'B':>7} {'change':>8}")
    shown = diff.heads if limit is None else diff.heads[:limit]
    for change in shown:
        mark = " *" if abs(change.change) > diff.tolerance else ""
        lines.append(f"{change.head!s:<8} {change.statistic:<20} {format_value(change.a):>7} "
                     f"{format_value(change.b):>7} {change.change:>+8.3f}{mark}")
    if len(shown) < len(diff.heads):
        lines.append(f"... {len(diff.heads) - len(shown)} more heads ({more})")
    return lines


def check_comparable(a: Profile, b: Profile) -> None:
    """Raise `UsageError` unless A and B are profiles of same-sized models over the same
    sentences at the same level."""
    if (a.num_layers, a.num_heads) != (b.num_layers, b.num_heads):
        raise UsageError(f"cannot diff a {a.num_layers}-layer, {a.num_heads}-head model "
                         f"({a.model}) with a {b.num_layers}-layer, {b.num_heads}-head one "
                         f"({b.model}): heads only correspond between models of one size")
    if a.level != b.level:
        raise UsageError(f"cannot diff a profile at level {a.level!r} with one at level "
                         f"{b.level!r}; profile both at one level (--level)")
    if (a.count, a.sentences_sha256) != (b.count, b.sentences_sha256):
        raise UsageError(f"the two profiles are over different sentences ({a.count} sentences, "
                         f"sha256 {a.sentences_sha256[:12]}... against {b.count}, "
                         f"{b.sentences_sha256[:12]}...); profile both on one sentence file "
                         f"(--sentences FILE)")


def diff_profiles(a: Profile, b: Profile, tolerance: float = DEFAULT_TOLERANCE) -> ProfileDiff:
    """Every head ranked by its largest |change| from A to B (see the module docstring)."""
    check_comparable(a, b)
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise UsageError(f"--tolerance: expected a number >= 0, got {tolerance!r}")
    statistics = tuple(s for s in a.statistics if s in b.statistics)
    left_out = tuple(s for s in (*a.statistics, *b.statistics) if s not in statistics)
    columns_a = [a.statistics.index(s) for s in statistics]
    columns_b = [b.statistics.index(s) for s in statistics]
    # Compared as profile files hold them (6 decimals), so that a profile read from a file
    # and the same one computed afresh do not differ.
    values_a = np.round(a.values[:, columns_a], _DIGITS)
    values_b = np.round(b.values[:, columns_b], _DIGITS)
    changes = _changes(values_a, values_b)  # [head, statistic]
    ranked = []
    for h, head in enumerate(a.heads):
        s = int(np.argmax(np.abs(changes[h]))) if np.isfinite(changes[h]).any() else 0
        value_a, value_b = values_a[h, s], values_b[h, s]
        ranked.append(HeadChange(head, statistics[s], _value(value_a), _value(value_b),
                                 float(np.nan_to_num(changes[h, s]))))
    ranked.sort(key=lambda c: (-abs(c.change), c.head))
    return ProfileDiff(a=a, b=b, tolerance=float(tolerance), heads=tuple(ranked),
                       left_out=tuple(dict.fromkeys(left_out)))


def _changes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b - a`` where both have values, ``±value`` where one has, 0 where neither."""
    a0, b0 = np.nan_to_num(a), np.nan_to_num(b)
    both_missing = np.isnan(a) & np.isnan(b)
    return np.where(both_missing, 0.0, b0 - a0)


def _value(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), _DIGITS)

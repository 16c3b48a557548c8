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
from dataclasses import dataclass
from typing import Any

import numpy as np

from headprobe.errors import UsageError
from headprobe.heads import Head
from headprobe.regression.profiles import Profile

DEFAULT_TOLERANCE = 0.05
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

"""Head names: ``L3H10`` is layer 3, head 10, counted from 1 (SPEC §1).

This module is the one place where 1-based names become 0-based array indices.
Grammar of a head pattern list::

    heads   := pattern ("," pattern)*
    pattern := "L" (INT | "*") "H" (INT | "*")
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from headprobe.errors import ClaimFileError

_PATTERN = re.compile(r"^\s*L([0-9]{1,6}|\*)H([0-9]{1,6}|\*)\s*$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Head:
    """A concrete head, 1-based as users name it."""

    layer: int
    head: int

    def __str__(self) -> str:
        return f"L{self.layer}H{self.head}"

    @property
    def index(self) -> tuple[int, int]:
        """0-based ``(layer, head)`` for indexing ``attentions[layer, head]``."""
        return self.layer - 1, self.head - 1


@dataclass(frozen=True)
class HeadPattern:
    """``L3H10``, ``L3H*``, ``L*H10`` or ``L*H*``; ``None`` stands for ``*``."""

    layer: int | None
    head: int | None

    def __str__(self) -> str:
        return f"L{self.layer or '*'}H{self.head or '*'}"

    def expand(self, num_layers: int, num_heads: int) -> list[Head]:
        """Concrete heads of a model of that size; raises if out of range."""
        check_in_range(self, num_layers, num_heads)
        layers = [self.layer] if self.layer is not None else range(1, num_layers + 1)
        heads = [self.head] if self.head is not None else range(1, num_heads + 1)
        return [Head(layer, head) for layer in layers for head in heads]


def check_in_range(pattern: HeadPattern, num_layers: int, num_heads: int) -> None:
    if pattern.layer is not None and not 1 <= pattern.layer <= num_layers:
        raise ClaimFileError(
            f"layer {pattern.layer} in {pattern} is out of range: this model has layers "
            f"1..{num_layers} (heads are counted from 1, as in L1H1)")
    if pattern.head is not None and not 1 <= pattern.head <= num_heads:
        raise ClaimFileError(
            f"head {pattern.head} in {pattern} is out of range: this model has heads "
            f"1..{num_heads} per layer (heads are counted from 1, as in L1H1)")


def parse_head_patterns(text: str) -> tuple[HeadPattern, ...]:
    """Parse ``"L3H10,L4H*"``; raises `ClaimFileError` naming the bad part."""
    if not isinstance(text, str) or not text.strip():
        raise ClaimFileError(f"expected heads such as 'L3H10' or 'L3H*', got {text!r}")
    patterns = []
    for part in text.split(","):
        match = _PATTERN.match(part)
        if not match:
            raise ClaimFileError(
                f"expected a head such as 'L3H10', 'L3H*', 'L*H10' or 'L*H*' (counted from 1, "
                f"at most 6 digits), got {_shown(part.strip())}")
        layer, head = (None if g == "*" else int(g) for g in match.groups())
        if layer == 0 or head == 0:
            raise ClaimFileError(
                f"{part.strip()!r}: layers and heads are counted from 1 (L1H1 is the first head)")
        patterns.append(HeadPattern(layer, head))
    return tuple(patterns)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def parse_head(text: str) -> Head:
    """A single concrete head such as ``L3H10`` (no wildcards)."""
    (pattern,) = parse_head_patterns(text) if "," not in text else (None,)
    if pattern is None or pattern.layer is None or pattern.head is None:
        raise ClaimFileError(f"expected one concrete head such as 'L3H10', got {text!r}")
    return Head(pattern.layer, pattern.head)


def unique_heads(heads: Iterable[Head]) -> tuple[Head, ...]:
    """``heads`` each once, in the order first met."""
    return tuple(dict.fromkeys(heads))


def expand_heads(patterns: Iterable[HeadPattern], num_layers: int,
                 num_heads: int) -> tuple[Head, ...]:
    """The concrete heads of ``patterns`` on a model of that size, each once, in order;
    raises `ClaimFileError` for a pattern out of range."""
    return unique_heads(h for pattern in patterns for h in pattern.expand(num_layers, num_heads))

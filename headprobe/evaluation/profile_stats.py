"""A head profile's statistics (SPEC §11, §13), for every head and statistic at once. Pure numpy.

A profile holds, for every head, ``argmax:T`` and ``mass:T`` for each target T of `TARGETS`
(source ``token``, pooled over sentences as in SPEC §4) and ``entropy``. `sentence_numbers`
computes one sentence's numbers for all heads and statistics in one vectorised pass (no loop
over heads or statistics): with the attention rows of every head ``[head, source, position]``
and the target sets of every target ``[target, source, position]``,

- argmax hits ``[target, head]``: counted sources whose most-attended position is a target, a
  row whose maximum is tied among m positions counting (tied targets) / m (`measures.top_ties`:
  the same numbers as ``measure: argmax``);
- mass ``[target, head]``: the attention on the targets, summed over counted sources;
- counted ``[target]``: sources with at least one target (the others are left out, per target);
- entropy ``[head]``: the sum over sources of the row's entropy divided by the log of its number
  of positions (0: all attention on one position, 1: uniform);
- (SPEC §14.3) ``output-norm`` ``[head]``: the sum over the sentence's tokens that are not
  special of ``||o_h(i)|| / ||x(i)||`` (the head's output relative to the layer's input), and
  with ``--effects`` ``effect:hidden`` ``[head]``: the sum over the same tokens of what removing
  the head (mean ablation) does to the last hidden state. Both are means over tokens, whatever
  the profile's level.

`ProfileAccumulator` sums them over sentences and keeps each sentence's numbers (for per-sentence
values: the sentence where a head changed most, a bootstrap interval).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from headprobe.claims.spec import Source, Target
from headprobe.evaluation.measures import row_entropy, top_ties
from headprobe.evaluation.positions import LevelView, select
from headprobe.heads import Head

TARGETS: tuple[str, ...] = ("previous", "next", "self", "offset:-2", "offset:+2", "offset:-3",
                            "offset:+3", "cls", "sep", "punct", "same-word")
MEASURES = ("argmax", "mass")
#: The statistics of a SPEC §11 (v2) profile: the attention's.
ATTENTION_STATISTICS: tuple[str, ...] = (*(f"{m}:{t}" for m in MEASURES for t in TARGETS),
                                         "entropy")
OUTPUT_NORM = "output-norm"
EFFECT_HIDDEN = "effect:hidden"
#: The statistics of a profile (SPEC §14.3); with ``--effects`` `EFFECT_HIDDEN` follows.
STATISTICS: tuple[str, ...] = (*ATTENTION_STATISTICS, OUTPUT_NORM)
#: Every statistic a profile file may hold, in order.
ALL_STATISTICS: tuple[str, ...] = (*STATISTICS, EFFECT_HIDDEN)
#: Statistics that are not shares or weights in [0, 1] (a head may write more than its input).
UNBOUNDED: frozenset[str] = frozenset({OUTPUT_NORM, EFFECT_HIDDEN})


def statistics_of(effects: bool) -> tuple[str, ...]:
    """The statistics of a profile computed with or without ``--effects``."""
    return ALL_STATISTICS if effects else STATISTICS
_TOKEN = Source("token")


def target_of(name: str) -> Target:
    """The claim-language target of a profile target name (``offset:-2`` ...)."""
    if name.startswith("offset:"):
        return Target("offset", offset=int(name.split(":", 1)[1]))
    steps = {"previous": -1, "next": 1, "self": 0}
    if name in steps:
        return Target(name, offset=steps[name])  # type: ignore[arg-type]
    return Target(name)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class SentenceNumbers:
    """One sentence's profile numbers (see the module docstring): argmax and mass hits
    ``[target, head]``, counted sources ``[target]``, entropy sum ``[head]`` and the number of
    sources the entropy is over; output-norm and effect sums ``[head]`` (None when not
    computed) over ``tokens`` tokens."""

    argmax: np.ndarray
    mass: np.ndarray
    counted: np.ndarray
    entropy: np.ndarray
    sources: int
    output_norm: np.ndarray | None = None
    effect: np.ndarray | None = None
    tokens: int = 0


def token_sums(values: np.ndarray, special: np.ndarray) -> tuple[np.ndarray, int]:
    """(float64 ``[head]``, tokens): per-token values ``[..., token]`` (``[layer, head,
    token]`` or ``[head, token]``) summed over the tokens that are not special, heads flattened
    layer by layer."""
    keep = ~np.asarray(special, dtype=bool)
    flat = np.asarray(values, dtype=np.float64).reshape(-1, keep.size)
    return flat[:, keep].sum(axis=1), int(keep.sum())

def sentence_numbers(view: LevelView, heads: tuple[Head, ...]) -> SentenceNumbers:
    """The profile numbers of one sentence (a `LevelView` of its run) for ``heads``."""
    size = view.size
    sources = np.flatnonzero(~view.special)
    targets = np.zeros((len(TARGETS), sources.size, size), dtype=bool)
    for t, name in enumerate(TARGETS):
        selection = select(view, _TOKEN, target_of(name), ())
        rows = np.searchsorted(sources, selection.sources)  # counted sources among all
        targets[t, rows] = selection.targets
    counted = np.asarray(targets.any(axis=-1))  # [target, source]
    rows = view.rows(heads, sources).astype(np.float64)  # [head, source, position]
    top = top_ties(rows).astype(np.float64)  # [head, source, position]: the tied maxima
    share = top / top.sum(axis=-1, keepdims=True)  # each gets 1/m of its row's hit
    argmax = np.einsum("hsn,tsn->th", share, targets.astype(np.float64))  # [target, head]
    mass = np.einsum("hsn,tsn->th", rows, targets.astype(np.float64))
    return SentenceNumbers(argmax=argmax, mass=mass, counted=counted.sum(axis=-1),
                           entropy=_entropy(rows, size), sources=int(sources.size))


def _entropy(rows: np.ndarray, size: int) -> np.ndarray:
    """``[head]``: the sum over sources of each row's entropy / log(size) (`row_entropy`, the
    same numbers as ``measure: entropy``)."""
    if size < 2 or rows.shape[1] == 0:
        return np.zeros(rows.shape[0])
    return row_entropy(rows).sum(axis=-1)


@dataclass
class ProfileAccumulator:
    """Profile numbers summed over sentences, each sentence's kept (in the order added)."""

    heads: tuple[Head, ...]
    sentences: list[SentenceNumbers] = field(default_factory=list)

    statistics: tuple[str, ...] = ATTENTION_STATISTICS

    def add(self, view: LevelView) -> SentenceNumbers:
        numbers = sentence_numbers(view, self.heads)
        self.sentences.append(numbers)
        return numbers

    def values(self) -> np.ndarray:
        """float64 ``[head, statistic]`` in the order of ``statistics``, pooled over sentences
        (NaN where nothing was counted)."""
        return pooled(self.sentences, len(self.heads), self.statistics)

    def per_sentence(self) -> np.ndarray:
        """float64 ``[sentence, head, statistic]``: each sentence's own values (NaN where it
        counted nothing)."""
        if not self.sentences:
            return np.zeros((0, len(self.heads), len(self.statistics)))
        return np.stack([pooled([s], len(self.heads), self.statistics)
                         for s in self.sentences])


def pooled(sentences: list[SentenceNumbers], heads: int,
           statistics: tuple[str, ...] = ATTENTION_STATISTICS) -> np.ndarray:
    """float64 ``[head, statistic]`` of these sentences' numbers pooled (SPEC §4), for
    ``statistics`` (`ATTENTION_STATISTICS`, then optionally `OUTPUT_NORM` and
    `EFFECT_HIDDEN`, in that order)."""
    argmax = np.zeros((len(TARGETS), heads))
    mass = np.zeros((len(TARGETS), heads))
    counted = np.zeros(len(TARGETS))
    entropy = np.zeros(heads)
    norms, effects = np.zeros(heads), np.zeros(heads)
    sources = tokens = 0
    for s in sentences:
        argmax += s.argmax
        mass += s.mass
        counted += s.counted
        entropy += s.entropy
        sources += s.sources
        tokens += s.tokens
        if OUTPUT_NORM in statistics:
            norms += _required(s.output_norm, OUTPUT_NORM)
        if EFFECT_HIDDEN in statistics:
            effects += _required(s.effect, EFFECT_HIDDEN)
    out = np.full((heads, len(statistics)), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(counted[:, None] > 0, argmax / counted[:, None], np.nan)  # [t, head]
        mean = np.where(counted[:, None] > 0, mass / counted[:, None], np.nan)
    out[:, :len(TARGETS)] = share.T
    out[:, len(TARGETS):2 * len(TARGETS)] = mean.T
    out[:, 2 * len(TARGETS)] = entropy / sources if sources else np.nan
    for name, sums in ((OUTPUT_NORM, norms), (EFFECT_HIDDEN, effects)):
        if name in statistics:
            out[:, statistics.index(name)] = sums / tokens if tokens else np.nan
    return out


def _required(sums: np.ndarray | None, name: str) -> np.ndarray:
    if sums is None:
        raise ValueError(f"the profile's sentences have no {name} numbers")
    return sums

"""Which heads matter (SPEC §14.4, ``discover --importance``): every head ranked by what removing
it does, the removable and the important ones marked, and the effect claims that say so. Pure:
results in, rankings and claims out.

A head is **removable** when the upper end of its 95% interval is below `REMOVABLE` (0.01):
removing it moves the output by less than 1%, with confidence. It is **important** when it is
among the ``top`` highest-ranked heads and the lower end of its interval is at least
`IMPORTANT` (0.05). Written claims: ``>=`` the lower bound rounded down to a multiple of 0.05
for the important heads (`headprobe.discovery.ranking.threshold`), ``<= 0.01`` for the
removable ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from headprobe.discovery.margins import Margin, margin_text
from headprobe.discovery.ranking import threshold
from headprobe.discovery.writer import WrittenClaim, interval_text
from headprobe.evaluation.results import ClaimResult, format_value

REMOVABLE = 0.01
IMPORTANT = 0.05


@dataclass(frozen=True)
class Importance:
    """One head's standing: rank (from 1, largest effect first), result, and its marks."""

    rank: int
    result: ClaimResult
    important: bool
    removable: bool


def rank_importance(results: Sequence[ClaimResult], top: int) -> list[Importance]:
    """Every head ranked by its effect (no value last; ties in head order)."""
    order = sorted(range(len(results)),
                   key=lambda i: (results[i].value is None, -(results[i].value or 0.0), i))
    ranked = []
    for rank, i in enumerate(order, start=1):
        ci = results[i].ci
        important = rank <= top and ci is not None and ci[0] >= IMPORTANT
        removable = ci is not None and ci[1] < REMOVABLE
        ranked.append(Importance(rank, results[i], important, removable))
    return ranked


def importance_claims(ranked: Sequence[Importance], effect: str, label: str,
                      sentences: int,
                      margins: Mapping[str, Margin] | None = None) -> list[WrittenClaim]:
    """The effect claims of the important and the removable heads; ``margins`` (by head name,
    `headprobe.discovery.margins.result_margins`) set the important heads' expectations."""
    claims = []
    fields = (("effect", effect),) if effect != "hidden" else ()
    for entry in ranked:
        result = entry.result
        if not (entry.important or entry.removable) or result.value is None \
                or result.ci is None:
            continue
        why = (f"headprobe discover --importance: rank {entry.rank} of {len(ranked)} heads. "
               f"effect:{effect} (mean ablation) {format_value(result.value)}, "
               f"{interval_text(result.ci)}, n={result.n}, {sentences} sentences of {label}.")
        if entry.important:
            margin = None if margins is None else margins.get(result.head)
            low = result.ci[0] if margin is None else margin.low
            text = "" if margin is None else f" {margin_text(margin)}."
            claims.append(WrittenClaim(id=f"matters-{result.head}", claim=f"{result.head}: token",
                                       measure="effect", expect=threshold(low, result.value),
                                       why=why + text, fields=fields))
        else:
            claims.append(WrittenClaim(id=f"removable-{result.head}",
                                       claim=f"{result.head}: token", measure="effect",
                                       expect=REMOVABLE, why=why, op="<=", fields=fields))
    return claims

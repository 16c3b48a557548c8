"""Checks on the values of one hypothesis: numbers in range, and the rules between its fields.

Each check raises a `ClaimFileError` at the field to change, saying what to do:
``confidence`` lies strictly between 0 and 1, ``tolerance`` and ``margin`` in [0, 1]; ``margin``
needs ``baseline: offset``; a ``span:`` label must be used by the sentences the claim is over;
``measure: entropy`` takes no target and no baseline, every other measure needs a target
(SPEC §13); ``expect: unchanged`` takes a ``tolerance`` and no quantifier but ``each``, no
``confidence``, no ``baseline``, and no other expectation takes a ``tolerance`` (SPEC §10).
"""

from __future__ import annotations

from yaml.nodes import Node

from headprobe.claims.claim_forms import WrittenClaim
from headprobe.claims.spec import Expectation, Measure
from headprobe.claims.yaml_fields import Entries, Fields
from headprobe.errors import did_you_mean

__all__ = ["check_spans", "check_target", "check_unchanged", "read_confidence", "read_margin",
           "read_tolerance"]


def read_confidence(fields: Fields, node: Node) -> float:
    value = fields.number(node, "confidence")
    if not 0 < value < 1:
        raise fields.error(node, "confidence", f"{value:g} is not strictly between 0 and 1; "
                                               f"write a level such as 0.95")
    return value


def read_tolerance(fields: Fields, node: Node) -> float:
    value = fields.number(node, "tolerance")
    if not 0 <= value <= 1:
        raise fields.error(node, "tolerance", f"{value:g} is outside [0, 1]; a tolerance is how "
                                              f"far a value may move, such as 0.02")
    return value


def read_margin(fields: Fields, node: Node, baseline: str | None) -> float:
    if baseline is None:
        raise fields.error(node, "margin", "'margin' only applies with 'baseline: offset'; "
                                           "add the baseline or remove the margin")
    value = fields.number(node, "margin")
    if not 0 <= value <= 1:
        raise fields.error(node, "margin", f"{value:g} is outside [0, 1]; a margin is a "
                                           f"difference of shares or masses, such as 0.1")
    return value


def check_spans(fields: Fields, written: WrittenClaim, over: tuple[str, ...],
                labels: dict[str, set[str]]) -> None:
    """Every ``span:`` label of the claim is used by some sentence of the sets it is over."""
    claim, _, nodes, claim_field = written
    known = set().union(*(labels[name] for name in over))
    for role, part in (("source", claim.source), ("target", claim.target)):
        if part is None or part.kind != "span" or part.arg is None or part.arg in known:
            continue
        fieldname = claim_field or ("from" if role == "source" else "to")
        listed = ", ".join(sorted(known)) if known else "none (mark spans as [text]{label})"
        raise fields.error(nodes[role], fieldname,
                           f"unknown span label {part.arg!r}{did_you_mean(part.arg, known)} in "
                           f"the {role}: the sentences of {', '.join(over)} have labels: "
                           f"{listed}")


def check_target(fields: Fields, node: Node, entries: Entries, written: WrittenClaim,
                 measure: Measure, baseline: str | None) -> None:
    """``measure: entropy`` takes no target and no baseline; every other measure needs a
    target (SPEC §13)."""
    claim, _, nodes, claim_field = written
    fieldname = claim_field or "to"
    if measure.needs_target and claim.target is None:
        if claim_field is None:
            raise fields.error(node, "to",
                               f"missing: the fields form needs 'head:', 'from:' and 'to:' "
                               f"(measure {measure} needs a target, as in 'to: next'; only "
                               f"'measure: entropy' is measured without one)")
        raise fields.error(nodes["target"], fieldname,
                           f"the claim has no target: write it as 'HEADS: SOURCE -> TARGET', "
                           f"e.g. '{claim.heads[0]}: {claim.source} -> next'; only "
                           f"'measure: entropy' is measured without a target")
    what = {"entropy": "how spread out the source rows are",
            "effect": "what removing the heads does at the source tokens"}.get(measure.kind, "")
    if not measure.needs_target and claim.target is not None:
        raise fields.error(nodes["target"], fieldname,
                           f"measure {measure.kind} needs no target: it measures {what}; write "
                           f"'{claim.heads[0]}: {claim.source}' (without '-> {claim.target}'), "
                           f"or choose another measure")
    if not measure.needs_target and baseline is not None:
        raise fields.error(entries["baseline"][0], "baseline",
                           "'baseline: offset' compares with always attending to one position; "
                           f"it does not apply to measure {measure.kind}; remove it")


def check_contribution(fields: Fields, entries: Entries, measure: Measure | None,
                       weighting: str | None) -> None:
    """``ablation``, ``effect`` and ``together`` go with ``measure: effect`` only, and
    ``weighting`` only with the attention measures (SPEC §14)."""
    kind = measure.kind if measure is not None else "argmax"
    if kind != "effect":
        for name in ("ablation", "effect", "together"):
            if name in entries:
                raise fields.error(entries[name][0], name,
                                   f"'{name}' says how heads are removed: it goes with "
                                   f"'measure: effect' only (this claim's measure is {kind}); "
                                   f"add 'measure: effect' or remove '{name}'")
    elif weighting is not None:
        raise fields.error(entries["weighting"][0], "weighting",
                           "'weighting' chooses what attention-based measures read (attention or "
                           "norm weights); 'measure: effect' removes heads instead: remove it")


def check_unchanged(fields: Fields, entries: Entries, expect: Expectation,
                    quantifier: str | None, confidence: float | None,
                    baseline: str | None) -> None:
    """``expect: unchanged`` compares each head's value with its snapshot: it takes a
    ``tolerance`` and no quantifier but ``each``, no ``confidence``, no ``baseline``."""
    if not expect.is_unchanged:
        if "tolerance" in entries:
            raise fields.error(entries["tolerance"][0], "tolerance",
                               "'tolerance' only applies with 'expect: unchanged'; remove it "
                               "or compare with a snapshot")
        return
    conflicts = [("quantifier", quantifier not in (None, "each")),
                 ("confidence", confidence is not None), ("baseline", baseline is not None)]
    for name, conflict in conflicts:
        if conflict:
            raise fields.error(entries[name][0], name,
                               f"'{name}' does not go with 'expect: unchanged', which compares "
                               f"every head's value with its snapshot; remove one of them")

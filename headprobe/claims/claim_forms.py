"""The claim of one hypothesis, in either of its two written forms (SPEC §2).

A hypothesis gives its claim as one string, ``claim: "L2H5: token -> next"``, or as the fields
``head:``, ``from:`` and (optionally) ``to:``; not both. `read_claim` parses either form into a
`WrittenClaim`: the `Claim`, its text in the one-string form, the nodes to blame for a source or
target problem found later (`headprobe.claims.claim_checks`), and which form was used.
"""

from __future__ import annotations

from typing import NamedTuple

from yaml.nodes import Node

from headprobe.claims.language import parse_claim, parse_source, parse_target
from headprobe.claims.spec import Claim
from headprobe.claims.yaml_fields import Entries, Fields
from headprobe.heads import parse_head_patterns

__all__ = ["WrittenClaim", "read_claim"]


class WrittenClaim(NamedTuple):
    """A claim as the file wrote it."""

    claim: Claim
    text: str
    """The claim in the one-string form (``HEADS: SOURCE -> TARGET``)."""
    nodes: dict[str, Node]
    """The node to blame for a problem with the ``"source"`` and with the ``"target"``."""
    field: str | None
    """``"claim"`` for the one-string form, None for the ``head:``/``from:``/``to:`` fields."""


def read_claim(fields: Fields, node: Node, entries: Entries) -> WrittenClaim:
    """The claim of the hypothesis ``node`` (whose mapping is ``entries``)."""
    given = [key for key in ("head", "from", "to") if key in entries]
    if "claim" in entries and given:
        raise fields.error(entries[given[0]][0], given[0], "give either 'claim:' or the "
                           "fields 'head:', 'from:' and 'to:', not both")
    if "claim" in entries:
        claim_node = entries["claim"][1]
        text = fields.string(claim_node, "claim", "L2H5: token -> next")
        claim = fields.parsed(claim_node, "claim", lambda value: parse_claim(value.strip()))
        return WrittenClaim(claim, text, {"source": claim_node, "target": claim_node}, "claim")
    if not given:
        raise fields.error(node, "claim", "missing: give 'claim: \"L2H5: token -> next\"' or "
                                          "the fields 'head:', 'from:' and 'to:'")
    for key in ("head", "from"):
        if key not in entries:
            raise fields.error(node, key, "missing: the fields form needs 'head:', 'from:' "
                                          "and 'to:' (or write one 'claim:' instead)")
    head = fields.string(entries["head"][1], "head", "L4H11")
    source = fields.string(entries["from"][1], "from", "span:adv")
    target = fields.string(entries["to"][1], "to", "span:verb") if "to" in entries else None
    claim = Claim(heads=fields.parsed(entries["head"][1], "head",
                                      lambda v: parse_head_patterns(v.strip())),
                  source=fields.parsed(entries["from"][1], "from", parse_source),
                  target=None if target is None
                  else fields.parsed(entries["to"][1], "to", parse_target))
    text = f"{head}: {source}" if target is None else f"{head}: {source} -> {target}"
    return WrittenClaim(claim, text, {"source": entries["from"][1],
                                      "target": entries["to" if "to" in entries else "from"][1]},
                        None)

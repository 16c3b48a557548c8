"""The ``hypotheses:`` list of a hypothesis file (SPEC §2), read into `ClaimSpec`s.

`read_claims` reads each entry on its own and keeps the ones that read well; each field of an
entry is read on its own too (`Mistakes.attempt`), so that all of an entry's independent mistakes
are kept before it is given up. Valid fields are `CLAIM_KEYS`; ``id``, ``over``, ``expect`` and a
claim (`headprobe.claims.claim_forms`) are required; ids are unique in a file. ``over`` names sets
read from ``sentences:`` (`headprobe.claims.file_sets`): a claim over a set in error is dropped
without a second error. A field left out takes the file's ``level`` or the default of SPEC §2
(`DEFAULT_TOLERANCE` for ``expect: unchanged``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Literal

from yaml.nodes import MappingNode, Node, SequenceNode

from headprobe.claims import claim_checks as checks
from headprobe.claims.claim_forms import read_claim
from headprobe.claims.file_sets import FileSets
from headprobe.claims.language import effect_measure, parse_expectation, parse_measure
from headprobe.claims.mistakes import Mistakes, Reported
from headprobe.claims.spec import (
    ABLATIONS,
    AVERAGES,
    BASELINES,
    EFFECTS,
    LEVELS,
    PERS,
    QUANTIFIERS,
    WEIGHTINGS,
    ClaimSpec,
    Measure,
)
from headprobe.claims.yaml_fields import Fields, line
from headprobe.errors import did_you_mean

__all__ = ["CLAIM_KEYS", "DEFAULT_TOLERANCE", "read_claims"]

CLAIM_KEYS = ("id", "claim", "head", "from", "to", "over", "measure", "expect", "why", "level",
              "quantifier", "per", "confidence", "model", "skip", "xfail", "baseline", "margin",
              "tolerance", "average", "weighting", "ablation", "effect", "together")
DEFAULT_TOLERANCE = 0.02
"""How far an ``expect: unchanged`` claim's value may move from its snapshot (SPEC §10)."""
_BAD_ID = re.compile(r"\s|\[|\]|::")


def read_claims(fields: Fields, mistakes: Mistakes, node: Node,
                level: Literal["token", "word"], sets: FileSets) -> tuple[ClaimSpec, ...]:
    """The entries of the ``hypotheses:`` list ``node`` that read well (in order); the mistakes
    of the others are kept in ``mistakes``. ``level``: the file's, for entries without one."""
    return _ClaimReader(fields, mistakes, level, sets).claims(node)


@dataclass(frozen=True)
class _ClaimReader:
    """Reads the entries of one file's ``hypotheses:`` list."""

    fields: Fields
    mistakes: Mistakes
    file_level: Literal["token", "word"]
    sets: FileSets

    def claims(self, node: Node) -> tuple[ClaimSpec, ...]:
        if not isinstance(node, SequenceNode):
            raise self.fields.wrong_type(node, "hypotheses", "a list of hypotheses (each "
                                                             "starting with '- id:')")
        specs: list[ClaimSpec] = []
        first_line: dict[str, int] = {}
        for item in node.value:
            spec = self.mistakes.attempt(partial(self.claim_spec, item))
            if spec is None:
                continue
            if spec.id in first_line:
                self.mistakes.add(self.fields.error(
                    item, "id", f"duplicate id {spec.id!r}: also used by the hypothesis at line "
                                f"{first_line[spec.id]}; ids must be unique in a file"))
                continue
            first_line[spec.id] = spec.line
            specs.append(spec)
        return tuple(specs)

    def claim_spec(self, node: Node) -> ClaimSpec:
        """One hypothesis; each of its fields is read on its own, so that all its independent
        mistakes are kept (`Mistakes.attempt`) before the claim is given up."""
        fields = self.fields
        if not isinstance(node, MappingNode):
            raise fields.wrong_type(node, "hypotheses", "a hypothesis mapping with 'id:', "
                                                        "'claim:', 'over:' and 'expect:'")
        entries = fields.mapping(node, None, "a hypothesis mapping", CLAIM_KEYS)
        before = len(self.mistakes.errors)
        for required in ("id", "over", "expect"):
            if required not in entries:
                self.mistakes.add(fields.error(node, required, f"missing: every hypothesis "
                                                               f"needs {required!r}"))
        attempt, read = self.mistakes.attempt, fields.optional
        identifier = attempt(lambda: self.identifier(entries["id"][1])) if "id" in entries \
            else None
        written = attempt(lambda: read_claim(fields, node, entries))
        over = attempt(lambda: self.over(entries["over"][1])) if "over" in entries else None
        if written is not None and over is not None:
            attempt(lambda: checks.check_spans(fields, written, over, self.sets.labels))
        expect = attempt(lambda: fields.parsed(entries["expect"][1], "expect",
                                               parse_expectation)) if "expect" in entries else None
        baseline = attempt(lambda: read(entries, "baseline",
                                        lambda n: fields.choice(n, "baseline", BASELINES)))
        measure = attempt(lambda: read(entries, "measure",
                                       lambda n: fields.parsed(n, "measure", parse_measure)))
        level = attempt(lambda: read(entries, "level",
                                     lambda n: fields.choice(n, "level", LEVELS)))
        quantifier = attempt(lambda: read(entries, "quantifier",
                                          lambda n: fields.choice(n, "quantifier", QUANTIFIERS)))
        per = attempt(lambda: read(entries, "per", lambda n: fields.choice(n, "per", PERS)))
        average = attempt(lambda: read(entries, "average",
                                       lambda n: fields.choice(n, "average", AVERAGES)))
        confidence = attempt(lambda: read(entries, "confidence",
                                          partial(checks.read_confidence, fields)))
        model = attempt(lambda: read(entries, "model",
                                     lambda n: fields.string(n, "model", "bert-base-uncased")))
        skip = attempt(lambda: read(entries, "skip",
                                    lambda n: fields.string(n, "skip", "needs a GPU")))
        xfail = attempt(lambda: read(entries, "xfail",
                                     lambda n: fields.string(n, "xfail", "known to fail")))
        margin = attempt(lambda: read(entries, "margin",
                                      lambda n: checks.read_margin(fields, n, baseline)))
        why = attempt(lambda: read(entries, "why",
                                   lambda n: fields.string(n, "why", "the reason")))
        tolerance = attempt(lambda: read(entries, "tolerance",
                                         partial(checks.read_tolerance, fields)))
        weighting = attempt(lambda: read(entries, "weighting",
                                         lambda n: fields.choice(n, "weighting", WEIGHTINGS)))
        ablation = attempt(lambda: read(entries, "ablation",
                                        lambda n: fields.choice(n, "ablation", ABLATIONS)))
        effect = attempt(lambda: read(entries, "effect",
                                      lambda n: fields.choice(n, "effect", EFFECTS)))
        together = attempt(lambda: read(entries, "together",
                                        lambda n: fields.boolean(n, "together")))
        attempt(lambda: checks.check_contribution(fields, entries, measure, weighting))
        if measure is not None and measure.kind == "effect":
            measure = effect_measure(ablation, effect, together)
        if expect is not None:
            attempt(lambda: checks.check_unchanged(fields, entries, expect, quantifier,
                                                   confidence, baseline))
        if written is not None and (measure is not None or "measure" not in entries):
            attempt(lambda: checks.check_target(fields, node, entries, written,
                                                measure or Measure(), baseline))
        if self.mistakes.since(before) or identifier is None or written is None or over is None \
                or expect is None:
            raise Reported  # what was wrong is in self.mistakes
        return ClaimSpec(
            file=fields.file, line=line(node), id=identifier, claim=written.claim, over=over,
            expect=expect, measure=measure or Measure(), level=level or self.file_level,
            quantifier=quantifier or "each", per=per or "pool", average=average or "pool",
            confidence=confidence,
            model=model, skip=skip, xfail=xfail, baseline=baseline, margin=margin or 0.0,
            why=why, tolerance=(tolerance if tolerance is not None else DEFAULT_TOLERANCE)
            if expect.is_unchanged else None,
            claim_text=written.text,
            claim_line=line(entries["claim" if written.field else "head"][1]),
            claim_field=written.field or "head", weighting=weighting or "attention")

    def identifier(self, node: Node) -> str:
        identifier = self.fields.string(node, "id", "next-token")
        if _BAD_ID.search(identifier):
            raise self.fields.error(node, "id", f"id {identifier!r} may not contain spaces, '[', "
                                                f"']' or '::' (it becomes part of the test id "
                                                f"FILE::ID[L3H10]); use letters, digits, '-' "
                                                f"and '_'")
        return identifier

    def over(self, node: Node) -> tuple[str, ...]:
        """The names of the sets the claim is over (one name or a list), each once."""
        fields, sets = self.fields, self.sets.sets
        items = node.value if isinstance(node, SequenceNode) else [node]
        if not items:
            raise fields.error(node, "over", "the list is empty; name at least one sentence set")
        names: list[str] = []
        for item in items:
            name = fields.string(item, "over", "everyday")
            if name in self.sets.broken:
                raise Reported  # the set's own mistake is reported
            if name not in sets:
                known = ", ".join(sets) or "none (add a 'sentences:' mapping)"
                raise fields.error(item, "over", f"no sentence set called {name!r}"
                                                 f"{did_you_mean(name, sets)}; sets in this "
                                                 f"file: {known}")
            if name not in names:
                names.append(name)
        return tuple(names)

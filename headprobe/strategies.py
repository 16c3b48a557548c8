"""Hypothesis strategies of sentences, for claims written in Python with ``@given``.

    from hypothesis import given
    from headprobe.strategies import from_template

    @given(from_template("The {animal} [moved]{verb} [{adverb}]{adv} across the road.",
                         animal=["cat", "horse"], adverb=["slowly", "quickly"]))
    def test_adverb_to_verb(headprobe_model, sentence):
        claim = headprobe_model.claim("L4H11: span:adv -> span:verb")
        assert claim.over([sentence]).argmax() >= 0.5

Values shrink toward the simplest (fewest words, shortest), as for ``generate:`` sets in YAML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from headprobe.claims.sentences import check_template
from headprobe.claims.spec import Template
from headprobe.errors import ClaimFileError, UsageError
from headprobe.generate import template_strategy


def from_template(template: str, slots: Mapping[str, Sequence[str]] | None = None,
                  **more_slots: Sequence[str]):
    """A strategy of `headprobe.claims.spec.Sentence` drawn from ``template``'s slot values."""

    given = {**(slots or {}), **more_slots}
    try:
        ordered = check_template(template, {k: list(v) for k, v in given.items()})
    except ClaimFileError as error:
        raise UsageError(f"from_template: {error.message}") from None
    return template_strategy(Template(template, ordered), origin="from_template")

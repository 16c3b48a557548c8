"""`ClaimJob`: what evaluating one claim needs, built at collection, carried by the pytest item."""

from __future__ import annotations

from dataclasses import dataclass

from headprobe.claims.spec import ClaimSpec, Sentence, Template
from headprobe.heads import Head


@dataclass(frozen=True)
class ClaimJob:
    """One claim on a set of concrete heads over its sentences.

    Attributes:
      key: names the job among the jobs of one evaluation (the pytest node id under `check`).
      spec: the claim as written.
      heads: the concrete heads this job decides: one for quantifier ``each``, all the matched
        heads for ``any`` and ``none``.
      model_spec: the model to evaluate it on (after ``--model`` and the defaults).
      sentences: every sentence of the sets it is over, in order.
      templates: the ``generate:`` templates among those sets (for shrinking counterexamples).
      display_file: the hypothesis file as it is shown in reports (relative to the root).
      unknown_sentences: how many sentences have words the vocabulary cannot spell (allowed
        by ``unknown_words: allow``).
    """

    key: str
    spec: ClaimSpec
    heads: tuple[Head, ...]
    model_spec: str
    sentences: tuple[Sentence, ...]
    templates: tuple[Template, ...] = ()
    display_file: str = ""
    unknown_sentences: int = 0

    @property
    def group(self) -> tuple[str, str, str]:
        """Jobs of one claim on one model share their scoring: (file, claim id, model)."""
        return self.display_file, self.spec.id, self.model_spec

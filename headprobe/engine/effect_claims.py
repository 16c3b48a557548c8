"""Measuring ``measure: effect`` claims on a model (SPEC §14.2): the claim's heads removed, each
alone or together, over its sentences, streamed into a `ClaimAccumulator`.

One pass of `Model.iter_effects` per claim; with mean ablation the means are over the claim's own
sentences (a first pass). Numbers are not kept in the score cache: a sentence's numbers depend on
the claim's whole sentence set through the means.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from headprobe.claims.spec import ClaimSpec, Sentence
from headprobe.engine.failure_figures import draw_failure_figures, figure_requests
from headprobe.evaluation import ClaimAccumulator
from headprobe.evaluation.effects import effect_numbers, effect_run
from headprobe.evaluation.results import ClaimResult
from headprobe.heads import Head, parse_head

if TYPE_CHECKING:  # the handle's module imports the claim API, which imports this one
    from headprobe.engine.models import ModelHandle


def together_label(heads: Sequence[Head]) -> str:
    """What results call heads removed together: ``L2H1+L2H5``."""
    return "+".join(map(str, heads))


def measure_effects(model: ModelHandle, spec: ClaimSpec, sentences: Sequence[Sentence],
                    heads: Sequence[Head],
                    advance: Callable[[], None] = lambda: None) -> ClaimAccumulator:
    """The accumulator of an effect claim over ``heads`` (one column per head, or one labelled
    `together_label` with ``together``), every sentence recorded; ``advance`` is called per
    sentence."""
    measure = spec.measure
    together = bool(measure.together)
    accumulator = ClaimAccumulator(spec, heads[:1] if together else heads,
                                   label=together_label(heads) if together else None)
    texts = [s.text for s in sentences]
    encodings = model.tokenize(texts)
    for index, values in model.iter_effects(texts, [h.index for h in heads],
                                            ablation=measure.ablation, effect=measure.effect,
                                            together=together, encodings=encodings):
        accumulator.record(index, texts[index],
                           effect_numbers(spec, sentences[index], effect_run(encodings[index]),
                                          values))
        advance()
    return accumulator


def with_effect_figures(model: ModelHandle, spec: ClaimSpec, sentences: Sequence[Sentence],
                        result: ClaimResult, *, folder: Path,
                        display_file: str) -> ClaimResult:
    """``result`` with the diagrams of a failing effect claim: on its worst sentences, the
    head's attention with the effect of removing it at each row (heads removed together: the
    first one's attention, the group's effect). Mean ablation's means are the claim's, from
    all of ``sentences``, as when it was measured."""
    requests = figure_requests(result, sentences)
    if not requests:
        return result
    measure = spec.measure
    texts = [s.text for s in sentences]
    means = model.context_means(texts) if measure.ablation == "mean" else None
    together = bool(measure.together)
    group = [parse_head(name).index for name in result.head.split("+")]
    drawn = []
    effects = []
    for request in requests:
        shown = [s.text for s in request.sentences]
        removed = group if together else [request.head.index]
        values = model.effects(shown, removed, ablation=measure.ablation or "mean",
                               effect=measure.effect or "hidden", together=together,
                               means=means)
        runs = model.run(shown, hidden_states=False, mlm_logits=False,
                         num_layers=request.head.layer)
        drawn.append((request, runs))
        effects.append([found[0] for found in values])
    return draw_failure_figures(spec, result, drawn, folder=folder, display_file=display_file,
                                effects=effects)
